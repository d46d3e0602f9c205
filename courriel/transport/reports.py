"""Delivery reports: the DSNs that recorded results call for, queued in the same transaction.

Every result passes through here before it is committed: a delivery stage's (`record` for the
SMTP stage, the queue's `reporter` seam for local delivery), the categorizer's at submission
(`on_submit`) and the queue scan's (expiry, unreachable). `dsn.py` says who gets a notice and
writes it; this module stores it as a blob, categorizes its one recipient (the original
sender) and hands the queue a new message with the null sender, committed with the results,
then dispatches it like any other and writes the DSN tracking event.

RFC 3461 §6.2.7.3 list expansion: a group recipient with NOTIFY=SUCCESS gets an "expanded"
notice at submission, and its members lose SUCCESS (NEVER if nothing is left), so the sender
is not told once per member.

It also keeps the register of recipients handed to local delivery and not yet recorded: the
seam finds their rows there without a query, and the queue scan does not expire a recipient
that stage is working on (the SMTP stage answers that for its own, `SmtpDelivery.busy`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from courriel.core.ids import new_id, new_message_id
from courriel.org.model import RecipientKind, TransportConfig
from courriel.storage.blobs import BlobStore
from courriel.transport.categorize.resolver import DirectoryView, EnvelopeRecipient
from courriel.transport.dsn import Notice, RecipientNotice, build_dsn, notify_values, wants_notice
from courriel.transport.queue.store import (
    QueuedMessage,
    QueuedRecipient,
    QueueStore,
    RecipientResult,
    Reports,
)
from courriel.transport.receive.headers import header_facts
from courriel.transport.retry import delay_notice_due, is_expired
from courriel.transport.tracking import TrackingLog

log = logging.getLogger(__name__)
RECENT = 600.0  # seconds a dispatched recipient counts as in a stage's hands without news
MAX_REGISTER = 200_000  # dispatched-recipient entries kept; the oldest go first (rows are re-read)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recipient's result with what its report needs."""

    msg: QueuedMessage
    rcpt: QueuedRecipient
    result: RecipientResult
    remote_mta: str | None = None
    passed_on: bool = False  # the next hop accepted our DSN parameters (RFC 3461 §5.2.2)


def _action(outcome: Outcome, now: float, config: TransportConfig) -> str | None:
    status = outcome.result.status
    if status == "failed":
        return "failed"
    if status == "retry":
        msg = outcome.msg
        due = delay_notice_due(msg.received_at, outcome.rcpt.delay_notified, now, config)
        return "delayed" if due and not is_expired(msg.expires_at, now) else None
    if status == "delivered":
        return "delivered"
    if status == "relayed":
        return None if outcome.passed_on else "relayed"  # RFC 3461 §5.2.2 / §6.2.7.1
    return None


class Reporter:
    def __init__(
        self,
        *,
        fqdn: str,
        queue: QueueStore,
        blobs: BlobStore,
        tracking: TrackingLog,
        directory: Callable[[], DirectoryView],
        transport_config: Callable[[], TransportConfig],
        categorize: Callable[[list[EnvelopeRecipient]], list[QueuedRecipient]],
        dispatch: Callable[[QueuedMessage, list[QueuedRecipient]], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fqdn = fqdn
        self.queue = queue
        self.blobs = blobs
        self.tracking = tracking
        self.directory = directory
        self.transport_config = transport_config
        self.categorize = categorize
        self.dispatch = dispatch
        self.clock = clock
        self._register: dict[int, tuple[QueuedMessage, QueuedRecipient, float]] = {}
        self.sent = 0

    # -- the register of recipients in a stage's hands -----------------------------------------

    def dispatched(self, msg: QueuedMessage, rcpts: Sequence[QueuedRecipient]) -> None:
        now = self.clock()
        for rcpt in rcpts:
            if rcpt.id is not None:
                self._register.pop(rcpt.id, None)  # re-inserted last: the dict stays oldest-first
                self._register[rcpt.id] = (msg, rcpt, now)
        while len(self._register) > MAX_REGISTER:
            del self._register[next(iter(self._register))]

    def in_flight(self, rcpt_id: int) -> bool:
        entry = self._register.get(rcpt_id)
        return entry is not None and self.clock() - entry[2] < RECENT

    # -- results to reports ---------------------------------------------------------------

    async def prepare(self, results: Sequence[RecipientResult]) -> Reports:
        """The queue's seam: reports for results recorded by a stage that knows only `record`."""
        found: dict[int, tuple[QueuedMessage, QueuedRecipient]] = {}
        missing = []
        for res in results:
            entry = self._register.get(res.id)
            if entry is not None:
                found[res.id] = (entry[0], entry[1])
            else:
                missing.append(res.id)
        for msg, rcpt in await self.queue.load(missing):
            assert rcpt.id is not None
            found[rcpt.id] = (msg, rcpt)
        return await self.prepare_outcomes(
            [Outcome(*found[res.id], res) for res in results if res.id in found]
        )

    async def prepare_outcomes(self, outcomes: Sequence[Outcome]) -> Reports:
        now = self.clock()
        config = self.transport_config()
        reports = Reports()
        per_message: dict[str, tuple[QueuedMessage, list[RecipientNotice]]] = {}
        for outcome in outcomes:
            self._register.pop(outcome.result.id, None)
            msg, rcpt, res = outcome.msg, outcome.rcpt, outcome.result
            action = _action(outcome, now, config)
            if action is None or not wants_notice(msg.sender, rcpt.notify, action):
                continue
            if action == "delayed":
                reports.delay_notified.append(res.id)
            per_message.setdefault(msg.id, (msg, []))[1].append(
                RecipientNotice(
                    final_recipient=rcpt.address,
                    action=action,
                    error=res.error,
                    original_recipient=rcpt.orcpt,
                    remote_mta=outcome.remote_mta,
                    last_attempt=now if action in ("failed", "delayed") and outcome.remote_mta else None,
                    will_retry_until=msg.expires_at if action == "delayed" else None,
                )
            )
        for msg, notices in per_message.values():
            reports.messages.append(await self._dsn(msg, notices, now, config))
        return reports

    async def record(self, outcomes: Sequence[Outcome]) -> list[str]:
        """Record results with their reports in one transaction, then send the reports on."""
        reports = await self.prepare_outcomes(outcomes)
        finished = await self.queue.record_with_reports([o.result for o in outcomes], reports)
        self.committed(reports)
        return finished

    async def on_submit(self, msg: QueuedMessage) -> Reports:
        """Before a new message is committed: "expanded" notices, and NDRs for the recipients the
        categorizer failed. Member rows of an expanded group lose NOTIFY=SUCCESS here."""
        now = self.clock()
        notices = []
        if msg.sender:
            directory = self.directory()
            for envelope_rcpt in msg.envelope.get("recipients", []):
                address, notify = envelope_rcpt.get("address", ""), envelope_rcpt.get("notify")
                if "SUCCESS" not in notify_values(notify):
                    continue
                group = directory.recipient(address)
                if group is None or group.kind is not RecipientKind.GROUP:
                    continue
                notices.append(
                    RecipientNotice(address, "expanded", original_recipient=envelope_rcpt.get("orcpt"))
                )
                for row in msg.recipients:
                    if row.original.lower() == address.lower():
                        kept = sorted(notify_values(row.notify) - {"SUCCESS"})
                        row.notify = ",".join(kept) if kept else "NEVER"
        for row in msg.recipients:
            if row.status == "failed" and wants_notice(msg.sender, row.notify, "failed"):
                notices.append(RecipientNotice(row.address, "failed", row.last_error, row.orcpt))
        if not notices:
            return Reports()
        return Reports([await self._dsn(msg, notices, now, self.transport_config())])

    def committed(self, reports: Reports) -> None:
        """After the commit: track each DSN and hand it to delivery."""
        for dsn in reports.messages:
            about = dsn.envelope.get("report", {})
            self.tracking.write(
                "DSN",
                source="DSN",
                internal_message_id=about.get("message", ""),
                message_id=about.get("message_id"),
                sender=about.get("sender", ""),
                recipients=about.get("recipients", []),
                related=dsn.id,
                detail=",".join(about.get("actions", [])),
                size=dsn.size,
            )
            self.sent += 1
            ready = [r for r in dsn.recipients if r.status == "ready"]
            if ready:
                self.dispatch(dsn, ready)

    async def _dsn(
        self, msg: QueuedMessage, notices: list[RecipientNotice], now: float, config: TransportConfig
    ) -> QueuedMessage:
        original = await self.blobs.get(msg.digest)
        dsn_id = new_id()
        message_id = new_message_id(self.fqdn)
        notice = Notice(
            reporting_mta=self.fqdn,
            to=msg.sender,
            arrival=msg.received_at,
            original=original,
            recipients=notices,
            envid=msg.envelope.get("envid"),
            ret=msg.envelope.get("ret"),
        )
        data = build_dsn(notice, now=now, message_id=message_id)
        blob = await self.blobs.put(data)
        actions = sorted({n.action for n in notices})
        return QueuedMessage(
            id=dsn_id,
            digest=blob.digest,
            size=blob.size,
            sender="",  # RFC 3461 §6.2: a DSN never gets a DSN
            envelope={
                "recipients": [{"address": msg.sender, "notify": None, "orcpt": None}],
                "body": "7BIT" if data.isascii() else "8BITMIME",
                "smtputf8": not msg.sender.isascii(),
                # What the DSN reports on, for the tracking log and `queue show`.
                "report": {
                    "message": msg.id,
                    "sender": msg.sender,
                    "message_id": msg.message_id,
                    "recipients": [n.final_recipient for n in notices],
                    "actions": actions,
                },
            },
            received_at=now,
            expires_at=now + config.message_expiration_timeout,
            source="DSN",
            message_id=message_id,
            subject=header_facts(data).subject,
            recipients=self.categorize([EnvelopeRecipient(msg.sender)]),
        )
