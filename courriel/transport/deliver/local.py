"""Delivery into the mailbox databases mounted on this server (the Mailbox Transport Delivery step).

Each recipient is delivered with a delivery key, unique per mailbox: the message's Message-ID
(hashed, so any length fits), or the queue id for a message without one. If the server dies after
the mailbox committed but before the queue recorded it, the retry finds the key and counts it as
delivered, so a message is in the mailbox exactly once. Keyed by Message-ID, this also catches
the copy a previous hop sent again because it died before it could record our 250 (shadow
redundancy's duplicates, DESIGN §4), and the same message reaching a mailbox by two routes, as
Exchange's duplicate detection does. Keys are kept for `DUPLICATE_WINDOW` (the Mailbox role
prunes older ones). Deliveries run concurrently; the mailbox database and the queue each group
them into shared transactions. Once results are recorded, an `after_delivery` observer hears of
each mailbox delivered to (the IssueWarningQuota check, transport/quota_warning.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from courriel.mailbox.fence import is_fenced
from courriel.mailbox.model import DeliveryRequest
from courriel.mailbox.store import MailboxDatabase
from courriel.org.model import MailboxDatabase as DatabaseInfo
from courriel.org.model import Recipient, TransportConfig, quota_in_force
from courriel.storage.blobs import BlobRef, BlobStore
from courriel.transport.queue.store import QueuedMessage, QueuedRecipient, QueueStore, RecipientResult
from courriel.transport.tracking import TrackingLog

log = logging.getLogger(__name__)
RETRY_FIRST = 5.0  # seconds before a failed local delivery is first tried again: most failures
RETRY_AFTER = 60.0  # (a lost connection, a deadlock) are over by then; later ones back off to this
MOVE_RETRY = 5.0  # seconds: a mailbox move's final step is short
DUPLICATE_WINDOW = 7 * 86400.0  # seconds a delivered Message-ID is remembered per mailbox


def retry_at(rcpt: QueuedRecipient) -> float:
    """When a local delivery that failed for a passing reason is tried again: 5 s, doubling to 60 s."""
    return time.time() + min(RETRY_FIRST * float(2 ** min(rcpt.attempts, 8)), RETRY_AFTER)


def delivery_key_window(config: TransportConfig) -> float:
    """Seconds a mailbox remembers a delivery key: the Message-ID window, and never less than a
    message can still be retried by a previous hop (its expiration timeout, plus a day)."""
    return max(DUPLICATE_WINDOW, config.message_expiration_timeout + 86400.0)


def delivery_key(msg: QueuedMessage, guid: str) -> str:
    """The key that makes a delivery to one mailbox happen once (see the module docstring)."""
    if msg.message_id and msg.message_id.strip():
        return "mid:" + hashlib.sha256(msg.message_id.strip().encode("utf-8", "replace")).hexdigest()
    return f"{msg.id}:{guid}"


class LocalDirectory(Protocol):
    def recipient(self, address: str) -> Recipient | None: ...
    def database(self, name: str) -> DatabaseInfo | None: ...


class DeliveryObserver(Protocol):
    async def delivered(self, recipient: Recipient, database: MailboxDatabase) -> None:
        """Called after the delivery is recorded; must not raise."""
        ...


class LocalDelivery:
    def __init__(
        self,
        *,
        databases: Callable[[str], MailboxDatabase | None],
        queue: QueueStore,
        tracking: TrackingLog,
        directory: Callable[[], LocalDirectory],
        blobs: BlobStore | None = None,
        concurrency: int = 256,
        after_delivery: DeliveryObserver | None = None,
    ) -> None:
        self.databases = databases
        self.blobs = blobs  # the queue's store; None: the databases share it
        self.queue = queue
        self.tracking = tracking
        self.directory = directory
        self.after_delivery = after_delivery
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: set[int] = set()
        self.delivered = 0

    def enqueue(self, msg: QueuedMessage, rcpts: list[QueuedRecipient]) -> None:
        """Start delivering these recipients of one message (recipient ids already committed)."""
        todo = [r for r in rcpts if r.id is not None and r.id not in self._in_flight]
        if not todo:
            return
        self._in_flight.update(r.id for r in todo if r.id is not None)
        task = asyncio.create_task(self._deliver(msg, todo))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def busy(self, rcpt_id: int) -> bool:
        """Is this recipient being delivered here?"""
        return rcpt_id in self._in_flight

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _database_name(self, rcpt: QueuedRecipient) -> str:
        """The mailbox's database now (moved since routing?), else the one routing chose."""
        recipient = self.directory().recipient(rcpt.address)
        if recipient is not None and recipient.guid == rcpt.target and recipient.database:
            return recipient.database
        return rcpt.next_hop.split(":", 1)[1]

    def _quota(self, rcpt: QueuedRecipient, db_name: str) -> int | None:
        view = self.directory()
        return quota_in_force(view.recipient(rcpt.address), view.database(db_name), "prohibit_send_receive_quota")

    async def _one(self, msg: QueuedMessage, rcpt: QueuedRecipient) -> RecipientResult:
        assert rcpt.id is not None
        db_name = self._database_name(rcpt)
        db = self.databases(db_name)
        if db is None or rcpt.target is None:
            return RecipientResult(rcpt.id, "retry", f"451 4.4.0 Mailbox database {db_name} is not mounted here", retry_at(rcpt))
        request = DeliveryRequest(
            guid=rcpt.target,
            owner=rcpt.address,
            blob=BlobRef(msg.digest, msg.size),
            delivery_key=delivery_key(msg, rcpt.target),
            internaldate=datetime.fromtimestamp(msg.received_at, UTC),
            prohibit_send_receive_quota=self._quota(rcpt, db_name),
        )
        try:
            async with self._slots:
                if self.blobs is not None:
                    await db.blobs.copy_from(self.blobs, request.blob)
                result = await db.deliver(request)
        except Exception as exc:  # a database outage: keep the message, try again later
            if is_fenced(exc):
                return RecipientResult(rcpt.id, "retry", "451 4.2.0 Mailbox is being moved; try again shortly", time.time() + MOVE_RETRY)
            log.warning("delivery of %s to %s failed: %s", msg.id, rcpt.address, exc)
            return RecipientResult(rcpt.id, "retry", f"451 4.3.0 Mailbox database error: {type(exc).__name__}", retry_at(rcpt))
        if result.status in ("delivered", "duplicate"):
            return RecipientResult(rcpt.id, "delivered", "250 2.0.0 Delivered" if result.status == "delivered" else "250 2.0.0 Duplicate delivery suppressed")
        if result.status == "quota_exceeded":
            return RecipientResult(rcpt.id, "failed", "552 5.2.2 Mailbox full: the recipient's mailbox is over its quota")
        return RecipientResult(rcpt.id, "failed", f"550 5.2.0 Mailbox unavailable ({result.status})")

    async def _deliver(self, msg: QueuedMessage, rcpts: list[QueuedRecipient]) -> None:
        try:
            results = await asyncio.gather(*(self._one(msg, r) for r in rcpts))
            await self.queue.record(results)
        except Exception:
            log.exception("recording delivery results for %s failed; the retry scan will pick them up", msg.id)
            return
        finally:
            self._in_flight.difference_update(r.id for r in rcpts if r.id is not None)
        self._track(msg, rcpts, results)
        if self.after_delivery is not None:
            await self._observe(self.after_delivery, rcpts, results)

    async def _observe(
        self, observer: DeliveryObserver, rcpts: list[QueuedRecipient], results: list[RecipientResult]
    ) -> None:
        view = self.directory()
        calls = []
        for rcpt, res in zip(rcpts, results, strict=True):
            recipient = view.recipient(rcpt.address)
            db = self.databases(self._database_name(rcpt))
            if res.status == "delivered" and recipient is not None and recipient.guid == rcpt.target and db is not None:
                calls.append(observer.delivered(recipient, db))
        await asyncio.gather(*calls)

    def _track(self, msg: QueuedMessage, rcpts: list[QueuedRecipient], results: list[RecipientResult]) -> None:
        by_status: dict[str, list[tuple[str, str | None]]] = {}
        for rcpt, res in zip(rcpts, results, strict=True):
            by_status.setdefault(res.status, []).append((rcpt.address, res.error))
        events = {"delivered": "DELIVER", "failed": "FAIL", "retry": "DEFER"}
        for status, entries in by_status.items():
            if status == "delivered":
                self.delivered += len(entries)
            self.tracking.write(
                events[status],
                source="STOREDRIVER",
                internal_message_id=msg.id,
                message_id=msg.message_id,
                sender=msg.sender,
                recipients=[a for a, _ in entries],
                recipient_status=entries[0][1],
                subject=msg.subject,
                size=msg.size,
                connector=msg.connector,
                client_ip=msg.client_ip,
            )
