"""The Mailbox role: blob store, transport queue, mailbox databases mounted here, local delivery.

Builds the concrete parts of DESIGN.md §3–§4 for one server and keeps the set of open mailbox
databases in step with the directory (a database mounted here later is opened when it appears).
"""

from __future__ import annotations

import asyncio
import logging
import time

from courriel.config.schema import ServerConfig
from courriel.dns import NextHopResolver
from courriel.mailbox.errors import NoSuchMailbox
from courriel.mailbox.store import MailboxDatabase
from courriel.org.cache import DirectoryCache
from courriel.org.model import LoggingLevel, Recipient
from courriel.storage.blobs import BlobStore
from courriel.transport.deliver.local import LocalDelivery
from courriel.transport.deliver.smtp import SmtpDelivery
from courriel.transport.protocol_log import ProtocolLog
from courriel.transport.queue.inspect import queue_path
from courriel.transport.queue.store import QueueStore
from courriel.transport.service import TransportService
from courriel.transport.tracking import TrackingLog

log = logging.getLogger(__name__)
USAGE_TTL = 2.0  # seconds a mailbox's size is trusted for RCPT-time quota checks


class MailboxRole:
    def __init__(self, config: ServerConfig, cache: DirectoryCache, worker: int = 0) -> None:
        self.config = config
        self.worker = worker
        self.cache = cache
        self.blobs = BlobStore(config.data_dir / "blobs")
        self.tracking = TrackingLog(config.data_dir / "logs" / "tracking", config.name)
        self.databases: dict[str, MailboxDatabase] = {}
        self._usage: dict[str, tuple[float, int]] = {}
        self._refreshing: dict[str, asyncio.Task[int]] = {}
        self.queue: QueueStore
        self.transport: TransportService

    async def start(self) -> None:
        self.queue = await QueueStore.open(queue_path(self.config, self.worker))
        await self.sync_databases()
        local = LocalDelivery(
            databases=self.databases.get,
            queue=self.queue,
            tracking=self.tracking,
            directory=lambda: self.cache.snapshot,
        )
        cfg = self.config
        smtp = SmtpDelivery(
            queue=self.queue,
            blobs=self.blobs,
            tracking=self.tracking,
            connectors=lambda: self.cache.snapshot.send_connectors(),
            resolver=NextHopResolver(list(cfg.dns_nameservers) or None, timeout=cfg.dns_timeout),
            fqdn=cfg.fqdn,
            transport_config=lambda: self.cache.snapshot.transport_config,
            protocol_log=ProtocolLog(
                cfg.data_dir / "logs" / "protocol" / "smtp-send", self._send_logging_enabled, prefix="SEND"
            ),
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
            smtp=smtp,
        )
        await self.transport.start()

    def _send_logging_enabled(self, connector: str) -> bool:
        return any(
            c.name == connector and c.protocol_logging_level is LoggingLevel.VERBOSE
            for c in self.cache.snapshot.send_connectors()
        )

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

    async def mailbox_size(self, recipient: Recipient) -> int | None:
        """The mailbox's size in bytes, for quota checks (None: not in a database mounted here).

        A size is trusted for USAGE_TTL seconds; after that the next caller waits for a fresh
        one, and concurrent callers for the same mailbox share that one query. Delivery checks
        ProhibitSendReceiveQuota again in the statement that stores the message.
        """
        db = self.databases.get(recipient.database or "")
        if db is None or recipient.guid is None:
            return None
        cached = self._usage.get(recipient.guid)
        if cached is not None and time.monotonic() - cached[0] <= USAGE_TTL:
            return cached[1]
        task = self._refreshing.get(recipient.guid)
        if task is None:
            guid = recipient.guid
            task = asyncio.create_task(self._refresh_usage(db, guid))
            self._refreshing[guid] = task

            def forget(_task: asyncio.Task[int]) -> None:
                self._refreshing.pop(guid, None)

            task.add_done_callback(forget)
        return await asyncio.shield(task)

    async def _refresh_usage(self, db: MailboxDatabase, guid: str) -> int:
        try:
            size, _count = await db.mailbox_usage(guid)
        except NoSuchMailbox:
            size = 0  # never received mail yet: the store creates it on first delivery
        self._usage[guid] = (time.monotonic(), size)
        return size

    async def stop(self) -> None:
        await self.transport.stop()
        await self.queue.close()
        for db in self.databases.values():
            await db.close()
        self.databases.clear()

