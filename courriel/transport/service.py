"""The Transport service of a Mailbox server: accept a message into the queue, then move it on.

`submit` is the commit point of DESIGN.md §4: the message gets its Received header (and, for a
submission, Message-ID and Date), the categorizer resolves its recipients, the bytes are stored
once (fsync'ed), and the envelope and per-recipient next hops are committed in a group
transaction. Only then does `submit` return, and only then does the SMTP session answer 250.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from courriel.core.errors import TransientError
from courriel.core.ids import new_id
from courriel.org.model import TransportConfig
from courriel.storage.blobs import BlobStore
from courriel.transport.categorize.resolver import Categorized, Categorizer, DirectoryView, EnvelopeRecipient
from courriel.transport.deliver.local import LocalDelivery
from courriel.transport.deliver.smtp import SmtpDelivery
from courriel.transport.firewall import admit_transaction
from courriel.transport.queue.store import QueuedMessage, QueuedRecipient, QueueStore, RecipientResult
from courriel.transport.receive.headers import header_facts, submission_headers, trace
from courriel.transport.reports import Outcome, Reporter
from courriel.transport.retry import expiry_error, is_expired
from courriel.transport.route.nexthop import (
    MAILBOX_DELIVERY,
    SERVER_RELAY,
    UNREACHABLE,
    external_hop,
    mailbox_hop,
)
from courriel.transport.route.organization import Topology
from courriel.transport.tracking import TrackingLog

log = logging.getLogger(__name__)
SCAN_INTERVAL = 15.0  # seconds between scans for recipients due for another attempt
WATCH_INTERVAL = 1.0  # seconds between looks at the queue file's change mark


def changed_mark(queue_file: Path) -> Path:
    """The file an admin command (queue/manage.py) replaces after changing this queue file: the
    worker that owns the file then scans at once. A mark of its own, not the file's mtime or
    SQLite's data_version: those also move with every commit of the worker itself."""
    return queue_file.with_name(queue_file.name + ".changed")


def _mark_state(mark: Path | None) -> tuple[int, int] | None:
    try:
        st = os.stat(mark) if mark is not None else None
    except FileNotFoundError:
        return None
    return None if st is None else (st.st_ino, st.st_mtime_ns)


@dataclass(slots=True)
class Submission:
    """One SMTP transaction as the receive side hands it over."""

    sender: str  # "" for the null sender
    recipients: Sequence[EnvelopeRecipient]
    data: bytes
    client_ip: str
    helo: str | None = None
    connector: str | None = None
    auth_user: str | None = None
    auth_server: str | None = None  # the organization server that relayed it (mutual TLS)
    auth_password: str | None = field(default=None, repr=False)  # kept only for a front end relaying as the user
    tls_version: str | None = None
    esmtp: bool = True
    smtputf8: bool = False
    is_submission: bool = False  # an authenticated client's message: add Message-ID/Date if missing
    mail_params: dict[str, Any] = field(default_factory=dict)  # ret, envid, body
    source: str = "SMTP"


@dataclass(frozen=True, slots=True)
class Accepted:
    queue_id: str
    message_id: str | None


def queued_recipients(result: Categorized, now: float, retry_interval: float) -> list[QueuedRecipient]:
    """Queue rows for a categorizer result: ready, waiting in Unreachable, or failed."""
    rcpts = [
        QueuedRecipient(
            address=r.address,
            original=r.original.address,
            next_hop=r.hop.key,
            delivery_type=r.hop.delivery_type,
            target=r.target,
            orcpt=r.original.orcpt,
            notify=r.original.notify,
            status="retry" if r.hop.delivery_type == UNREACHABLE else "ready",
            last_error=f"451 4.4.0 No send connector routes mail to {r.hop.key.split(':', 1)[1]}" if r.hop.delivery_type == UNREACHABLE else None,
            next_attempt=now + retry_interval if r.hop.delivery_type == UNREACHABLE else 0.0,
        )
        for r in result.resolved
    ]
    rcpts += [
        QueuedRecipient(address=f.address, original=f.original.address, next_hop="failed:categorizer", delivery_type="None",
                        orcpt=f.original.orcpt, notify=f.original.notify, status="failed", last_error=f"{f.code} {f.status} {f.text}")
        for f in result.failed
    ]
    return rcpts


class TransportService:
    def __init__(
        self,
        *,
        server: str,
        fqdn: str,
        queue: QueueStore,
        blobs: BlobStore,
        directory: Callable[[], DirectoryView],
        transport_config: Callable[[], TransportConfig],
        tracking: TrackingLog,
        local: LocalDelivery,
        smtp: SmtpDelivery | None = None,
        scan_interval: float = SCAN_INTERVAL,
        topology: Callable[[], Topology] | None = None,
    ) -> None:
        """`topology` says where mailbox databases are mounted (None: all of them here)."""
        self.server = server
        self.fqdn = fqdn
        self.queue = queue
        self.blobs = blobs
        self.directory = directory
        self.transport_config = transport_config
        self.tracking = tracking
        self.local = local
        self.smtp = smtp
        self.scan_interval = scan_interval
        self.topology = topology
        self._scanner: asyncio.Task[None] | None = None
        self._nudged = asyncio.Event()  # scan now (scans run only in the scan loop, one at a time)
        self.accepted = 0
        # DSNs are committed with the results that call for them (transport/reports.py): through
        # the queue's seam for local delivery, directly for the SMTP stage and the scan.
        self.reports = Reporter(
            fqdn=fqdn,
            queue=queue,
            blobs=blobs,
            tracking=tracking,
            directory=directory,
            transport_config=transport_config,
            categorize=self._categorize,
            dispatch=self.dispatch,
        )
        queue.reporter = self.reports
        if smtp is not None:
            smtp.reporter = self.reports

    def _categorizer(self) -> Categorizer:
        return Categorizer(self.directory(), self.server, self.fqdn, self.topology() if self.topology else None)

    def _categorize(self, rcpts: list[EnvelopeRecipient]) -> list[QueuedRecipient]:
        result = self._categorizer().categorize(rcpts)
        return queued_recipients(result, time.time(), self.transport_config().message_retry_interval)

    def _build(self, sub: Submission, queue_id: str) -> tuple[bytes, str | None, str | None]:
        facts = header_facts(sub.data)
        added = b""
        message_id = facts.message_id
        if sub.is_submission:
            added, message_id = submission_headers(facts, self.fqdn)
        received = trace(sub, by=self.fqdn, queue_id=queue_id)
        data = admit_transaction(sub, source=self.fqdn, network_message_id=queue_id)  # the header firewall
        return received + added + data, message_id, facts.subject

    async def submit(self, sub: Submission) -> Accepted:
        """Commit a message durably; raises TransientError if that cannot be done (the client gets 451)."""
        queue_id = new_id()
        data, message_id, subject = self._build(sub, queue_id)
        result = self._categorizer().categorize(sub.recipients, size=len(sub.data))  # MaxReceiveSize per recipient
        now = time.time()
        rcpts = queued_recipients(result, now, self.transport_config().message_retry_interval)
        try:
            blob = await self.blobs.put(data)
            msg = QueuedMessage(
                id=queue_id,
                digest=blob.digest,
                size=blob.size,
                sender=sub.sender,
                envelope={
                    "recipients": [{"address": r.address, "notify": r.notify, "orcpt": r.orcpt} for r in sub.recipients],
                    **sub.mail_params,
                },
                received_at=now,
                expires_at=now + self.transport_config().message_expiration_timeout,
                source=sub.source,
                connector=sub.connector,
                client_ip=sub.client_ip,
                client_helo=sub.helo,
                auth_user=sub.auth_user,
                message_id=message_id,
                subject=subject,
                recipients=rcpts,
            )
            reports = await self.reports.on_submit(msg)
            await self.queue.commit_with_reports(msg, reports)
        except Exception as exc:
            log.exception("could not commit message %s", queue_id)
            raise TransientError("Temporary failure storing the message", f"queue commit failed: {exc}") from exc
        self.accepted += 1
        self._after_commit(msg, sub, result.expanded)
        self.reports.committed(reports)
        return Accepted(queue_id, message_id)

    def _after_commit(self, msg: QueuedMessage, sub: Submission, expanded: list[tuple[str, list[str]]]) -> None:
        def track(event: str, source: str, recipients: list[str], **extra: Any) -> None:
            self.tracking.write(
                event, source=source, recipients=recipients, internal_message_id=msg.id,
                message_id=msg.message_id, sender=msg.sender, subject=msg.subject, **extra,
            )

        track("RECEIVE", sub.source, [r.address for r in sub.recipients], connector=sub.connector,
              client_ip=sub.client_ip, size=msg.size)
        for group, members in expanded:
            track("EXPAND", "ROUTING", members, related=group)
        failed = [r for r in msg.recipients if r.status == "failed"]
        if failed:
            track("FAIL", "ROUTING", [r.address for r in failed], recipient_status=failed[0].last_error)
        unreachable = [r for r in msg.recipients if r.delivery_type == UNREACHABLE]
        if unreachable:
            track("DEFER", "ROUTING", [r.address for r in unreachable], recipient_status=unreachable[0].last_error)
        self.dispatch(msg, [r for r in msg.recipients if r.status == "ready"])

    def dispatch(self, msg: QueuedMessage, rcpts: list[QueuedRecipient]) -> None:
        """Hand ready recipients to the delivery stage that serves their next hop."""
        waiting = [r for r in rcpts if r.status in ("ready", "retry")]
        local = [r for r in waiting if r.next_hop.startswith("mailbox:")]
        remote = [r for r in waiting if r.next_hop.startswith(("smtp:", "server:"))] if self.smtp is not None else []
        self.reports.dispatched(msg, local)  # the SMTP stage passes its rows to the reporter itself
        if local:
            self.local.enqueue(msg, local)
        if remote and self.smtp is not None:
            self.smtp.enqueue(msg, remote)

    def _in_flight(self, rcpt_id: int) -> bool:
        return (self.smtp is not None and self.smtp.busy(rcpt_id)) or self.reports.in_flight(rcpt_id)

    def _held(self, rcpt_id: int) -> bool:
        """Is a delivery stage working on this recipient right now?"""
        return self.local.busy(rcpt_id) or (self.smtp is not None and self.smtp.busy(rcpt_id))

    async def _due(self, now: float) -> list[tuple[QueuedMessage, QueuedRecipient]]:
        """Due recipients that no stage holds, as the queue has them now.

        The queue is read twice. A stage commits its result before it lets go of a recipient,
        so a row of the first read that no stage holds any more may be stale (delivered while
        we read); the second read begins after that check and sees any such result. Without
        it, a scan could hand a recipient that was just relayed to the SMTP stage again.
        """
        first = await self.queue.due(now)
        free = {r.id for _, r in first if r.id is not None and not self._held(r.id)}
        if not free:
            return []
        return [(m, r) for m, r in await self.queue.due(now) if r.id in free]

    async def start(self) -> None:
        """Resume after a restart: everything committed but not finished is attempted again."""
        await self._scan()
        self._scanner = asyncio.create_task(self._scan_loop(), name="queue-scan")

    async def _scan(self) -> None:
        now = time.time()
        by_message: dict[str, tuple[QueuedMessage, list[QueuedRecipient]]] = {}
        changes: list[tuple[int, dict[str, Any]]] = []
        settled: list[Outcome] = []  # expired, or still without a route (a delay DSN may be due)
        for msg, rcpt in await self._due(now):
            if rcpt.id is None:
                continue
            if is_expired(msg.expires_at, now):
                if not self._in_flight(rcpt.id):  # else the stage records what its attempt gives
                    settled.append(Outcome(msg, rcpt, RecipientResult(rcpt.id, "failed", expiry_error(rcpt.last_error))))
                continue
            if rcpt.delivery_type == UNREACHABLE:
                change = self._reroute(rcpt, now)
                if rcpt.delivery_type == UNREACHABLE:
                    settled.append(Outcome(msg, rcpt, RecipientResult(rcpt.id, "retry", rcpt.last_error, min(rcpt.next_attempt, msg.expires_at))))
                    continue
                changes.append((rcpt.id, change))
            elif rcpt.delivery_type in (MAILBOX_DELIVERY, SERVER_RELAY) and self._follow_database(rcpt):
                changes.append((rcpt.id, {"next_hop": rcpt.next_hop, "delivery_type": rcpt.delivery_type}))
            by_message.setdefault(msg.id, (msg, []))[1].append(rcpt)
        if settled:
            await self.reports.record(settled)
            self._track_settled(settled)
        if changes:
            await self.queue.reroute(changes)
        for msg, rcpts in by_message.values():
            self.dispatch(msg, rcpts)

    def _track_settled(self, settled: list[Outcome]) -> None:
        for o in settled:
            if o.result.status == "failed":
                self.tracking.write(
                    "FAIL", source="QUEUE", internal_message_id=o.msg.id, message_id=o.msg.message_id,
                    sender=o.msg.sender, recipients=[o.rcpt.address], recipient_status=o.result.error,
                    subject=o.msg.subject, size=o.msg.size,
                )

    def _reroute(self, rcpt: QueuedRecipient, now: float) -> dict[str, Any]:
        """Unreachable recipients are routed again: a send connector may have been added since."""
        domain = rcpt.address.rsplit("@", 1)[-1].lower()
        hop = external_hop(domain, self.directory().send_connectors(), self.server)
        if hop.delivery_type == UNREACHABLE:
            rcpt.next_attempt = now + self.transport_config().message_retry_interval
            return {"next_attempt": rcpt.next_attempt}
        rcpt.next_hop, rcpt.delivery_type, rcpt.status = hop.key, hop.delivery_type, "ready"
        return {"next_hop": hop.key, "delivery_type": hop.delivery_type, "status": "ready", "last_error": None}

    def _follow_database(self, rcpt: QueuedRecipient) -> bool:
        """Traffic follows the database: a mailbox whose database was mounted elsewhere (or back
        here) since routing is routed again. True if the hop changed."""
        recipient = self.directory().recipient(rcpt.address)
        if self.topology is None or recipient is None or recipient.database is None:
            return False
        hop = mailbox_hop(recipient.database, self.topology(), self.server)
        if hop.key == rcpt.next_hop:
            return False
        rcpt.next_hop, rcpt.delivery_type = hop.key, hop.delivery_type
        return True

    async def wake(self, next_hop: str) -> None:
        """Try a next hop's waiting recipients now: a mailbox database was just mounted here."""
        if await self.queue.wake(next_hop):
            self._nudged.set()

    async def _scan_loop(self) -> None:
        database = self.queue.reader.url.database
        mark = changed_mark(Path(database)) if database and database != ":memory:" else None
        seen, last = _mark_state(mark), time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), min(WATCH_INTERVAL, self.scan_interval))
            nudged, state = self._nudged.is_set(), _mark_state(mark)
            self._nudged.clear()
            if not nudged and state == seen and time.monotonic() - last < self.scan_interval:
                continue
            seen, last = state, time.monotonic()
            try:
                await self._scan()
            except Exception:
                log.exception("queue scan failed")

    async def stop(self) -> None:
        if self._scanner is not None:
            self._scanner.cancel()
            self._scanner = None
        await self.local.drain()
        if self.smtp is not None:
            await self.smtp.stop()
