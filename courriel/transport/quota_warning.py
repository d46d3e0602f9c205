"""IssueWarningQuota: "Your mailbox is almost full", at most once a day per mailbox.

Exchange warns a user whose mailbox has reached its IssueWarningQuota (the mailbox's own, else its
database's) while it is still below ProhibitSendReceiveQuota. Here local delivery
(`deliver/local.py`) calls `delivered` after it has recorded a delivery; the mailbox's size is read
then, and a mailbox without a warning quota costs nothing. The "last warned" time is claimed in
the directory (`org/quota_warnings.py`), shared by every worker and Mailbox server, before the
message is queued, so concurrent deliveries send one warning; a claim whose message could not be
queued is given back. An in-process memo of the claim skips the size read for the rest of the day,
and deliveries to one mailbox that finish together share one read (`SizeReads`).

The warning is a plain-text message from the organization's postmaster address, with the null
reverse-path (nothing bounces back to a notice, RFC 5321 §4.5.5) and `Auto-Submitted:
auto-generated` (RFC 3834 §5), committed through the transport like any other message.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from typing import Protocol

from courriel.core.ids import new_message_id
from courriel.org.model import MailboxDatabase, Recipient, quota_in_force
from courriel.org.quota_warnings import Claim
from courriel.transport.categorize.resolver import DirectoryView, EnvelopeRecipient, postmaster_address
from courriel.transport.service import Accepted, Submission

log = logging.getLogger(__name__)
WARNING_INTERVAL = 86400.0  # seconds: one warning per mailbox per day, as Exchange
MAX_MEMO = 100_000  # mailboxes remembered as recently warned in this process
SUBJECT = "Your mailbox is almost full"


class WarningLog(Protocol):
    async def claim(self, guid: str, now: float, interval: float) -> Claim: ...
    async def release(self, guid: str, claimed_at: float, previous: float | None) -> None: ...


class MailboxSizes(Protocol):
    async def mailbox_usage(self, guid: str) -> tuple[int, int]: ...


class WarningDirectory(DirectoryView, Protocol):
    def database(self, name: str) -> MailboxDatabase | None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    """A mailbox's quotas in force: its own where set, else its database's (bytes; None: unlimited)."""

    issue_warning: int | None
    prohibit_send: int | None
    prohibit_send_receive: int | None

    @classmethod
    def of(cls, recipient: Recipient, database: MailboxDatabase | None) -> Limits:
        return cls(
            quota_in_force(recipient, database, "issue_warning_quota"),
            quota_in_force(recipient, database, "prohibit_send_quota"),
            quota_in_force(recipient, database, "prohibit_send_receive_quota"),
        )

    def warns_at(self, size: int) -> bool:
        """At or over the warning quota, and not yet refused mail (Exchange's warning band)."""
        if self.issue_warning is None or size < self.issue_warning:
            return False
        return self.prohibit_send_receive is None or size < self.prohibit_send_receive


def size_text(value: int) -> str:
    """`1.9 MB (1,992,294 bytes)`: readable, and exact for whoever compares it with a client's figure."""
    amount, unit = float(value), "bytes"
    for unit_name, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if value >= factor:
            amount, unit = value / factor, unit_name
            break
    if unit == "bytes":
        return f"{value:,} bytes"
    return f"{amount:.1f} {unit} ({value:,} bytes)"


def warning_message(
    recipient: Recipient, size: int, limits: Limits, *, sender: str, now: float, message_id: str
) -> bytes:
    """The "almost full" message, CRLF throughout."""
    rows = [("Mailbox", recipient.primary_address), ("Size now", size_text(size))]
    if limits.issue_warning is not None:
        rows.append(("Warning limit (IssueWarningQuota)", size_text(limits.issue_warning)))
    if limits.prohibit_send is not None:
        rows.append(("You can't send mail at (ProhibitSendQuota)", size_text(limits.prohibit_send)))
    if limits.prohibit_send_receive is not None:
        rows.append(("You can't send or receive mail at (ProhibitSendReceiveQuota)", size_text(limits.prohibit_send_receive)))
    width = max(len(label) for label, _ in rows) + 2
    text = "\n".join(
        [
            "Your mailbox is almost full.",
            "",
            *(f"{label + ':':<{width}}{value}" for label, value in rows),
            "",
            "To make room, delete items you no longer need, empty your Deleted Items folder, or ask",
            "your administrator for more space. When your mailbox reaches the send limit you won't be",
            "able to send mail; at the send and receive limit, mail sent to you will be returned to",
            "its senders.",
            "",
            "This message is sent automatically, at most once a day.",
            "",
        ]
    )
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = HeaderAddress("Mail System Administrator", addr_spec=sender)
    msg["To"] = HeaderAddress(recipient.display_name or "", addr_spec=recipient.primary_address)
    msg["Subject"] = SUBJECT
    msg["Date"] = email.utils.format_datetime(datetime.fromtimestamp(now, UTC))
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5
    msg["X-Auto-Response-Suppress"] = "All"  # no out-of-office replies to it (Exchange's header)
    msg["Importance"] = "High"
    msg.set_content(text)
    return msg.as_bytes()


@dataclass(slots=True)
class _Read:
    task: asyncio.Task[int]
    started: int | None = None  # the sequence number when the query began; None: not yet


class SizeReads:
    """Mailbox sizes read after a delivery, one query for the callers that wait together.

    A caller may share a read only if the query begins after the caller asked: its own delivery
    (recorded before the caller asked) is then counted. The query waits one turn of the event
    loop, so deliveries to one mailbox that were recorded together (the queue's group commit)
    share it; under load on one mailbox that is one read per batch instead of one per message.
    """

    def __init__(self) -> None:
        self._sequence = itertools.count()
        self._reads: dict[str, _Read] = {}

    async def size(self, guid: str, database: MailboxSizes) -> int:
        asked = next(self._sequence)
        read = self._reads.get(guid)
        if read is None or (read.started is not None and read.started < asked):
            read = self._start(guid, database)
        return await asyncio.shield(read.task)

    def _start(self, guid: str, database: MailboxSizes) -> _Read:
        async def query() -> int:
            await asyncio.sleep(0)  # let the callers woken with this one ask first
            read.started = next(self._sequence)
            size, _count = await database.mailbox_usage(guid)
            return size

        read = _Read(asyncio.ensure_future(query()))
        self._reads[guid] = read

        def forget(_task: asyncio.Task[int]) -> None:
            if self._reads.get(guid) is read:
                del self._reads[guid]

        read.task.add_done_callback(forget)
        return read


class QuotaWarnings:
    """The IssueWarningQuota check after each local delivery (a `DeliveryObserver`)."""

    def __init__(
        self,
        *,
        directory: Callable[[], WarningDirectory],
        log: WarningLog,
        submit: Callable[[Submission], Awaitable[Accepted]],
        fqdn: str,
        interval: float = WARNING_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.log = log
        self.submit = submit
        self.fqdn = fqdn
        self.interval = interval
        self.clock = clock
        self._quiet: dict[str, float] = {}  # guid → until when it is known to be warned already
        self._sizes = SizeReads()

    async def delivered(self, recipient: Recipient, database: MailboxSizes) -> None:
        """A message was delivered to this mailbox: warn its owner if that left it almost full."""
        try:
            await self._check(recipient, database)
        except Exception:  # a warning must never disturb delivery; the next delivery tries again
            log.exception("quota warning check for %s failed", recipient.primary_address)

    async def _check(self, recipient: Recipient, database: MailboxSizes) -> None:
        guid = recipient.guid
        view = self.directory()
        limits = Limits.of(recipient, view.database(recipient.database or ""))
        now = self.clock()
        if guid is None or limits.issue_warning is None or self._quiet.get(guid, 0.0) > now:
            return
        size = await self._sizes.size(guid, database)
        if not limits.warns_at(size):
            return
        sender = postmaster_address(view) or f"postmaster@{self.fqdn}"
        data = warning_message(recipient, size, limits, sender=sender, now=now, message_id=new_message_id(self.fqdn))
        claim = await self.log.claim(guid, now, self.interval)
        if not claim.granted:
            self._remember(guid, (claim.warned_at or now) + self.interval, now)
            return
        try:
            await self.submit(
                Submission(
                    sender="",
                    recipients=[EnvelopeRecipient(recipient.primary_address)],
                    data=data,
                    client_ip="127.0.0.1",
                    helo=self.fqdn,
                    source="STOREDRIVER",  # generated at the mailbox, as Exchange's quota messages are
                )
            )
        except Exception:
            await self.log.release(guid, now, claim.warned_at)
            raise
        self._remember(guid, now + self.interval, now)
        log.info("mailbox %s is at %d bytes, over its IssueWarningQuota of %d: warned", recipient.primary_address, size, limits.issue_warning)

    def _remember(self, guid: str, until: float, now: float) -> None:
        if len(self._quiet) >= MAX_MEMO:
            self._quiet = {g: t for g, t in self._quiet.items() if t > now}
            if len(self._quiet) >= MAX_MEMO:
                self._quiet.clear()  # a memo only: the directory row still holds the claim
        self._quiet[guid] = until
