"""Delivery into the mailbox databases mounted on this server (the Mailbox Transport Delivery step).

Each recipient is delivered with a delivery key (queue id + mailbox GUID): if the server dies after
the mailbox committed but before the queue recorded it, the retry finds the key and counts it as
delivered, so a message is in the mailbox exactly once. Deliveries run concurrently; the mailbox
database and the queue each group them into shared transactions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from courriel.mailbox.model import DeliveryRequest
from courriel.mailbox.store import MailboxDatabase
from courriel.org.model import MailboxDatabase as DatabaseInfo
from courriel.org.model import Recipient
from courriel.storage.blobs import BlobRef
from courriel.transport.queue.store import QueuedMessage, QueuedRecipient, QueueStore, RecipientResult
from courriel.transport.tracking import TrackingLog

log = logging.getLogger(__name__)
RETRY_AFTER = 60.0  # seconds before a failed local delivery is tried again


class LocalDirectory(Protocol):
    def recipient(self, address: str) -> Recipient | None: ...
    def database(self, name: str) -> DatabaseInfo | None: ...


class LocalDelivery:
    def __init__(
        self,
        *,
        databases: Callable[[str], MailboxDatabase | None],
        queue: QueueStore,
        tracking: TrackingLog,
        directory: Callable[[], LocalDirectory],
        concurrency: int = 256,
    ) -> None:
        self.databases = databases
        self.queue = queue
        self.tracking = tracking
        self.directory = directory
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

    def _quota(self, rcpt: QueuedRecipient) -> int | None:
        view = self.directory()
        recipient = view.recipient(rcpt.address)
        if recipient is not None and recipient.prohibit_send_receive_quota is not None:
            return recipient.prohibit_send_receive_quota
        db = view.database(rcpt.next_hop.split(":", 1)[1])
        return db.prohibit_send_receive_quota if db is not None else None

    async def _one(self, msg: QueuedMessage, rcpt: QueuedRecipient) -> RecipientResult:
        assert rcpt.id is not None
        db_name = rcpt.next_hop.split(":", 1)[1]
        db = self.databases(db_name)
        if db is None or rcpt.target is None:
            return RecipientResult(rcpt.id, "retry", f"451 4.4.0 Mailbox database {db_name} is not mounted here", time.time() + RETRY_AFTER)
        request = DeliveryRequest(
            guid=rcpt.target,
            owner=rcpt.address,
            blob=BlobRef(msg.digest, msg.size),
            delivery_key=f"{msg.id}:{rcpt.target}",
            internaldate=datetime.fromtimestamp(msg.received_at, UTC),
            prohibit_send_receive_quota=self._quota(rcpt),
        )
        try:
            async with self._slots:
                result = await db.deliver(request)
        except Exception as exc:  # a database outage: keep the message, try again later
            log.warning("delivery of %s to %s failed: %s", msg.id, rcpt.address, exc)
            return RecipientResult(rcpt.id, "retry", f"451 4.3.0 Mailbox database error: {type(exc).__name__}", time.time() + RETRY_AFTER)
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
