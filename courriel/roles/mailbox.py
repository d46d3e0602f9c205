"""The Mailbox role: blob store, transport queue, mailbox databases mounted here, local delivery.

Builds the concrete parts of DESIGN.md §3–§4 for one server and keeps the set of open mailbox
databases in step with the directory (a database mounted here later is opened when it appears).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from courriel.config.schema import ServerConfig
from courriel.mailbox.errors import NoSuchMailbox
from courriel.mailbox.store import MailboxDatabase
from courriel.org.cache import DirectoryCache
from courriel.org.model import Recipient
from courriel.storage.blobs import BlobStore
from courriel.transport.deliver.local import LocalDelivery
from courriel.transport.queue.inspect import queue_path
from courriel.transport.queue.store import QueueStore
from courriel.transport.service import TransportService
from courriel.transport.tracking import TrackingLog

log = logging.getLogger(__name__)
USAGE_TTL = 2.0  # seconds a mailbox's size is trusted for RCPT-time quota checks


class MailboxRole:
    def __init__(self, config: ServerConfig, cache: DirectoryCache) -> None:
        self.config = config
        self.cache = cache
        self.blobs = BlobStore(config.data_dir / "blobs")
        self.tracking = TrackingLog(config.data_dir / "logs" / "tracking", config.name)
        self.databases: dict[str, MailboxDatabase] = {}
        self._usage: dict[str, tuple[float, int]] = {}
        self.queue: QueueStore
        self.transport: TransportService

    async def start(self) -> None:
        self.queue = await QueueStore.open(queue_path(self.config))
        await self.sync_databases()
        local = LocalDelivery(
            databases=self.databases.get,
            queue=self.queue,
            tracking=self.tracking,
            directory=lambda: self.cache.snapshot,
        )
        self.transport = TransportService(
            server=self.config.name,
            fqdn=self.config.fqdn,
            queue=self.queue,
            blobs=self.blobs,
            directory=lambda: self.cache.snapshot,
            transport_config=lambda: self.cache.snapshot.transport_config,
            tracking=self.tracking,
            local=local,
        )
        await self.transport.start()

    async def sync_databases(self) -> None:
        """Open the databases mounted on this server; close those moved away or dismounted."""
        wanted = {
            db.name: db
            for db in self.cache.snapshot.databases()
            if db.server == self.config.name and db.mounted
        }
        for name in list(self.databases):
            if name not in wanted:
                await self.databases.pop(name).close()
                log.info("mailbox database %s closed", name)
        for name, db in wanted.items():
            if name not in self.databases:
                self.databases[name] = await MailboxDatabase.open(name, db.url, self.config.data_dir, self.blobs)
                log.info("mailbox database %s mounted", name)

    async def mailbox_full(self, recipient: Recipient) -> bool:
        """ProhibitSendReceiveQuota reached? (the mailbox's own quota, else its database's)."""
        db = self.databases.get(recipient.database or "")
        info = self.cache.snapshot.database(recipient.database or "")
        quota = recipient.prohibit_send_receive_quota or (info.prohibit_send_receive_quota if info else None)
        if db is None or quota is None or recipient.guid is None:
            return False
        now = time.monotonic()
        cached = self._usage.get(recipient.guid)
        if cached is None or now - cached[0] > USAGE_TTL:
            try:
                size, _count = await db.mailbox_usage(recipient.guid)
            except NoSuchMailbox:
                size = 0  # never received mail yet: the store creates it on first delivery
            cached = self._usage[recipient.guid] = (now, size)
        return cached[1] >= quota

    async def stop(self) -> None:
        await self.transport.stop()
        await self.queue.close()
        for db in self.databases.values():
            await db.close()
        self.databases.clear()

