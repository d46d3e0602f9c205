"""The Mailbox role: blob store, transport queue, mailbox databases mounted here, local delivery.

Builds the concrete parts of DESIGN.md §3–§4 for one server and keeps the set of open mailbox
databases in step with the directory (a database mounted here later is opened when it appears).
With the organization's credentials, mail for a database mounted on another Mailbox server is
relayed there and FrontEndProxyEnabled connectors go through a Client Access server
(transport/deliver/organization.py), from this server's own listen address. Worker 0 forgets
delivery keys older than the duplicate window once an hour (transport/deliver/local.py) and
collects storage garbage: finished queue messages, unreferenced blobs (transport/queue/gc.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from courriel.config.schema import ServerConfig
from courriel.dns import NextHopResolver
from courriel.mailbox.errors import NoSuchMailbox
from courriel.mailbox.store import MailboxDatabase
from courriel.org.cache import DirectoryCache
from courriel.org.model import LoggingLevel, Recipient
from courriel.org.quota_warnings import QuotaWarningLog
from courriel.security.orgca import OrgCredentials
from courriel.storage.blobs import BlobStore, open_database_blobs
from courriel.transport.deliver.local import LocalDelivery, delivery_key_window
from courriel.transport.deliver.organization import OrgLinks
from courriel.transport.deliver.smtp import SmtpDelivery
from courriel.transport.protocol_log import ProtocolLog
from courriel.transport.queue.gc import collect_garbage, run_periodically
from courriel.transport.queue.inspect import queue_path
from courriel.transport.queue.store import QueueStore
from courriel.transport.quota_warning import QuotaWarnings
from courriel.transport.service import TransportService
from courriel.transport.tracking import TrackingLog

log = logging.getLogger(__name__)
USAGE_TTL = 2.0  # seconds a mailbox's size is trusted for RCPT-time quota checks
PRUNE_INTERVAL = 3600.0  # seconds between prunes of old delivery keys


class MailboxRole:
    def __init__(
        self,
        config: ServerConfig,
        cache: DirectoryCache,
        worker: int = 0,
        credentials: OrgCredentials | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.worker = worker
        self.cache = cache
        self.blobs = BlobStore(config.data_dir / "blobs")
        self.tracking = TrackingLog(config.data_dir / "logs" / "tracking", config.name)
        self.databases: dict[str, MailboxDatabase] = {}
        self._usage: dict[str, tuple[float, int]] = {}
        self._refreshing: dict[str, asyncio.Task[int]] = {}
        self.queue: QueueStore
        self.transport: TransportService
        self.warning_log: QuotaWarningLog | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._collector: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.queue = await QueueStore.open(queue_path(self.config, self.worker))
        await self.sync_databases()
        self.warning_log = QuotaWarningLog.open(self.config.directory_url, self.config.data_dir)
        local = LocalDelivery(
            databases=self.databases.get,
            queue=self.queue,
            tracking=self.tracking,
            directory=lambda: self.cache.snapshot,
            blobs=self.blobs,
            after_delivery=QuotaWarnings(
                directory=lambda: self.cache.snapshot,
                log=self.warning_log,
                submit=lambda sub: self.transport.submit(sub),
                fqdn=self.config.fqdn,
            ),
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
            organization=OrgLinks(cfg.name, lambda: self.cache.snapshot, self.credentials, cfg.listen)
            if self.credentials is not None
            else None,
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
            topology=lambda: self.cache.snapshot,
        )
        await self.transport.start()
        if self.worker == 0:
            self._pruner = asyncio.create_task(self._prune_loop(), name="delivery-key-prune")
            self._collector = asyncio.create_task(
                run_periodically(
                    lambda: collect_garbage(self.config, self.blobs, self.cache.snapshot.databases(), self.databases)
                ),
                name="storage-gc",
            )

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
                await self._close(self.databases.pop(name))
                log.info("mailbox database %s closed", name)
        for name, db in wanted.items():
            if name not in self.databases:
                # Each database reads and writes its own blob store: its bodies travel with it.
                blobs = await open_database_blobs(db.url, self.config.data_dir, self.blobs)
                try:
                    self.databases[name] = await MailboxDatabase.open(name, db.url, self.config.data_dir, blobs)
                except BaseException:
                    if blobs is not self.blobs:
                        await blobs.close()
                    raise
                log.info("mailbox database %s mounted", name)
                if hasattr(self, "transport"):  # mounted while running: its waiting mail goes now
                    await self.transport.wake(f"mailbox:{name}")

    async def _close(self, db: MailboxDatabase) -> None:
        await db.close()
        if db.blobs is not self.blobs:
            await db.blobs.close()

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

    async def _prune_loop(self) -> None:
        """Forget delivery keys older than the duplicate window, and never younger than a message
        can still be retried by a previous hop (its expiration timeout)."""
        while True:
            window = delivery_key_window(self.cache.snapshot.transport_config)
            cutoff = datetime.fromtimestamp(time.time() - window, UTC)
            for name, db in list(self.databases.items()):
                try:
                    pruned = await db.prune_delivery_keys(cutoff)
                except Exception:
                    log.exception("pruning delivery keys of %s failed", name)
                    continue
                if pruned:
                    log.info("mailbox database %s: %d delivery keys past the duplicate window forgotten", name, pruned)
            await asyncio.sleep(PRUNE_INTERVAL)

    async def stop(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        await self.transport.stop()
        await self.queue.close()
        if self.warning_log is not None:
            await self.warning_log.close()
        for db in self.databases.values():
            await self._close(db)
        self.databases.clear()

