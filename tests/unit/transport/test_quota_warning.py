"""IssueWarningQuota: the warning band, the message, once a day per mailbox, the shared claim.

The claim table is tested on both engines, with two logs (two engines, as two worker processes
or two Mailbox servers have) claiming the same mailbox at once.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from courriel.org.directory import Directory
from courriel.org.model import (
    AcceptedDomain,
    DomainType,
    MailboxDatabase,
    Recipient,
    RecipientKind,
    SendConnector,
    TransportConfig,
)
from courriel.org.quota_warnings import Claim, QuotaWarningLog
from courriel.transport.quota_warning import (
    SUBJECT,
    Limits,
    QuotaWarnings,
    SizeReads,
    size_text,
    warning_message,
)
from courriel.transport.service import Accepted, Submission

KB = 1024
DAY = 86400.0
CAROL = Recipient(
    7, RecipientKind.MAILBOX, "Carol Jones", "carol@example.test", ("carol@example.test",), database="DB01", guid="c7"
)


@dataclass
class View:
    database_quotas: MailboxDatabase = field(
        default_factory=lambda: MailboxDatabase("DB01", "sqlite:///x", "mx1", issue_warning_quota=None,
                                                prohibit_send_quota=None, prohibit_send_receive_quota=None)
    )
    transport_config: TransportConfig = field(default_factory=TransportConfig)

    def database(self, name: str) -> MailboxDatabase | None:
        return self.database_quotas if name == "DB01" else None

    def recipient(self, address: str) -> Recipient | None:
        return None

    def accepted_domain(self, domain: str) -> AcceptedDomain | None:
        return None

    def default_domain(self) -> AcceptedDomain | None:
        return AcceptedDomain("example.test", DomainType.AUTHORITATIVE, default=True)

    def members(self, group_id: int) -> Sequence[Recipient]:
        return []

    def send_connectors(self) -> Sequence[SendConnector]:
        return []


@dataclass
class Sizes:
    size: int
    reads: int = 0

    async def mailbox_usage(self, guid: str) -> tuple[int, int]:
        self.reads += 1
        return self.size, 1


@dataclass
class MemoryLog:
    """The claim rule of QuotaWarningLog, in memory (the real table is tested below)."""

    rows: dict[str, float] = field(default_factory=dict)

    async def claim(self, guid: str, now: float, interval: float) -> Claim:
        last = self.rows.get(guid)
        if last is not None and last > now - interval:
            return Claim(False, last)
        self.rows[guid] = now
        return Claim(True, last)

    async def release(self, guid: str, claimed_at: float, previous: float | None) -> None:
        if self.rows.get(guid) == claimed_at:
            if previous is None:
                del self.rows[guid]
            else:
                self.rows[guid] = previous


@dataclass
class Harness:
    view: View = field(default_factory=View)
    log: MemoryLog = field(default_factory=MemoryLog)
    sent: list[Submission] = field(default_factory=list)
    now: float = 1_800_000_000.0
    fail_submit: bool = False

    async def submit(self, sub: Submission) -> Accepted:
        if self.fail_submit:
            raise OSError("queue unavailable")
        self.sent.append(sub)
        return Accepted("q1", None)

    def warnings(self) -> QuotaWarnings:
        return QuotaWarnings(
            directory=lambda: self.view, log=self.log, submit=self.submit, fqdn="mx1.example.test", clock=lambda: self.now
        )


def carol(**limits: int | None) -> Recipient:
    return replace(CAROL, **limits)


def test_limits_are_the_mailbox_own_else_its_database_and_the_band_ends_at_the_receive_quota() -> None:
    db = MailboxDatabase("DB01", "sqlite:///x", "mx1", issue_warning_quota=100, prohibit_send_quota=150, prohibit_send_receive_quota=200)
    assert Limits.of(carol(), db) == Limits(100, 150, 200)
    assert Limits.of(carol(issue_warning_quota=50), db) == Limits(50, 150, 200)
    assert Limits.of(carol(), None) == Limits(None, None, None)
    band = Limits(100, None, 200)
    assert [band.warns_at(s) for s in (99, 100, 199, 200)] == [False, True, True, False]
    assert Limits(100, None, None).warns_at(10**12)
    assert not Limits(None, None, 200).warns_at(150)


def test_the_message_is_plain_readable_text_from_the_postmaster() -> None:
    raw = warning_message(
        carol(), 1_992_294, Limits(1945 * KB * KB, 2048 * KB * KB, None),
        sender="postmaster@example.test", now=1_800_000_000.0, message_id="<w1@mx1.example.test>",
    )
    assert b"\r\n\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == SUBJECT
    assert msg["From"].addresses[0].addr_spec == "postmaster@example.test"
    assert str(msg["To"]) == "Carol Jones <carol@example.test>"
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Message-ID"] == "<w1@mx1.example.test>"
    assert msg.get_content_type() == "text/plain"
    body = msg.get_content()
    assert "Your mailbox is almost full." in body
    assert "1.9 MB (1,992,294 bytes)" in body and "1.9 GB (2,039,480,320 bytes)" in body
    assert "ProhibitSendQuota" in body and "ProhibitSendReceiveQuota" not in body  # unlimited: not shown
    assert size_text(512) == "512 bytes" and size_text(50 * KB) == "50.0 KB (51,200 bytes)"


async def test_warned_once_a_day_from_the_postmaster_and_only_in_the_band() -> None:
    h = Harness()
    h.view.transport_config = TransportConfig(postmaster_address="admin@example.test")
    warnings = h.warnings()
    limited = carol(issue_warning_quota=100 * KB, prohibit_send_receive_quota=200 * KB)
    await warnings.delivered(limited, Sizes(99 * KB))
    assert h.sent == []
    await warnings.delivered(limited, Sizes(150 * KB))
    [sub] = h.sent
    assert sub.sender == "" and [r.address for r in sub.recipients] == ["carol@example.test"]
    assert b"From: Mail System Administrator <admin@example.test>" in sub.data
    # The rest of the day: no second warning, and no size read either (the claim is remembered).
    later = Sizes(160 * KB)
    h.now += DAY - 1
    await warnings.delivered(limited, later)
    assert len(h.sent) == 1 and later.reads == 0
    h.now += 1
    await warnings.delivered(limited, later)
    assert len(h.sent) == 2
    # At ProhibitSendReceiveQuota the mailbox takes no mail: no "almost full" then.
    h.now += 2 * DAY
    await warnings.delivered(limited, Sizes(200 * KB))
    assert len(h.sent) == 2


async def test_no_warning_quota_means_no_warning_and_no_size_read() -> None:
    h = Harness()
    sizes = Sizes(10**12)
    await h.warnings().delivered(carol(), sizes)  # neither the mailbox nor its database has one
    assert h.sent == [] and sizes.reads == 0
    h.view.database_quotas = MailboxDatabase("DB01", "sqlite:///x", "mx1", issue_warning_quota=KB, prohibit_send_receive_quota=None)
    await h.warnings().delivered(carol(), sizes)  # the database's applies
    assert len(h.sent) == 1


async def test_a_warning_another_process_sent_is_respected_and_a_failed_submit_gives_the_claim_back() -> None:
    h = Harness()
    limited = carol(issue_warning_quota=KB)
    h.log.rows["c7"] = h.now - 3600  # another worker warned an hour ago
    await h.warnings().delivered(limited, Sizes(2 * KB))
    assert h.sent == []
    h.now += DAY
    h.fail_submit = True
    warnings = h.warnings()
    await warnings.delivered(limited, Sizes(2 * KB))  # logged, not raised: delivery goes on
    assert h.sent == [] and h.log.rows["c7"] == h.now - DAY - 3600
    h.fail_submit = False
    await warnings.delivered(limited, Sizes(2 * KB))
    assert len(h.sent) == 1 and h.log.rows["c7"] == h.now


@pytest.fixture
async def directory_url(db_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A directory on each engine, its migrations applied (they create the claim table)."""
    async with await Directory.open(db_url, tmp_path):
        pass
    yield db_url


async def test_the_claim_table_grants_one_of_two_concurrent_claims(directory_url: str, tmp_path: Path) -> None:
    first, second = QuotaWarningLog.open(directory_url, tmp_path), QuotaWarningLog.open(directory_url, tmp_path)
    try:
        now = 1_800_000_000.0
        for round_ in range(3):  # a first warning, then later ones over an existing row
            at = now + round_ * DAY
            claims = await asyncio.gather(*(log.claim("c7", at, DAY) for log in (first, second, first, second)))
            assert sum(c.granted for c in claims) == 1, claims
            assert all(c.warned_at == at for c in claims if not c.granted)
            assert await second.last_warned("c7") == at
        refused = await first.claim("c7", now + 2 * DAY + 3600, DAY)
        assert refused == Claim(False, now + 2 * DAY)
        # Given back: the previous time again, or no row for a first warning.
        granted = await first.claim("c7", now + 4 * DAY, DAY)
        await first.release("c7", now + 4 * DAY, granted.warned_at)
        assert await second.last_warned("c7") == now + 2 * DAY
        assert (await second.claim("d8", now, DAY)).granted
        await second.release("d8", now, None)
        assert await first.last_warned("d8") is None
    finally:
        await first.close()
        await second.close()


@dataclass
class SlowSizes:
    """A mailbox whose size query waits for `release`; each query reports the size at its start."""

    size: int = 0
    reads: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def mailbox_usage(self, guid: str) -> tuple[int, int]:
        self.reads += 1
        seen = self.size
        await self.release.wait()
        return seen, 1


async def test_deliveries_recorded_together_share_one_size_read_and_later_ones_do_not() -> None:
    reads, db = SizeReads(), SlowSizes(size=10)
    together = [asyncio.ensure_future(reads.size("c7", db)) for _ in range(5)]
    await asyncio.sleep(0.01)  # the query has begun (and waits)
    db.size = 20  # a delivery recorded after that query began…
    late = asyncio.ensure_future(reads.size("c7", db))  # …must not be answered by it
    await asyncio.sleep(0.01)
    db.release.set()
    assert await asyncio.gather(*together) == [10] * 5
    assert await late == 20 and db.reads == 2
