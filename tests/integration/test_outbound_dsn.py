"""DSNs end to end: each failure, delay and success that calls for one produces it, it travels
back to the sender's MX over SMTP, and it reads right with the email package (RFC 3464)."""

from __future__ import annotations

import asyncio
import time

from courriel.core.replies import Reply
from courriel.transport.categorize.resolver import EnvelopeRecipient
from courriel.transport.queue.store import QueuedMessage, QueuedRecipient, RecipientResult
from tests.integration.outbound_env import (  # noqa: F401 (fixtures)
    MX_PORT,
    SENDER,
    Outbound,
    Peer,
    bounces_fixture,
    dns_fixture,
    fast_config,
    out_fixture,
)


async def test_null_mx_fails_at_once_with_an_ndr(out: Outbound, bounces: Peer) -> None:
    accepted = await out.submit(SENDER, ["erin@nullmx.test"], subject="To nowhere")
    (dsn,) = await bounces.wait_for(1)
    assert dsn.sender == "" and dsn.recipients == [SENDER]  # a DSN has the null sender
    assert dsn.parsed()["Subject"] == "Undeliverable: To nowhere"
    per_message, per_rcpt = dsn.report()
    assert per_message["Reporting-MTA"] == f"dns; {out.service.fqdn}"
    assert per_rcpt["Final-Recipient"] == "rfc822;erin@nullmx.test"
    assert (per_rcpt["Action"], per_rcpt["Status"]) == ("failed", "5.1.10")
    assert per_rcpt["Diagnostic-Code"].startswith("smtp; 556 5.1.10")
    (fail,) = out.events("FAIL")
    assert fail["source"] == "DNS" and fail["internal_message_id"] == accepted.queue_id
    (event,) = out.events("DSN")
    assert event["internal_message_id"] == accepted.queue_id and event["detail"] == "failed"


async def test_delay_notice_then_expiry_ndr(out: Outbound, bounces: Peer) -> None:
    out.config[0] = fast_config(delay_notification_timeout=0.5, message_expiration_timeout=2.5)
    peer = await Peer(
        "127.0.0.124", MX_PORT, rcpt_replies={"max@remote.test": Reply(450, "4.2.0", "Greylisted")}
    ).start()
    try:
        accepted = await out.submit(SENDER, ["max@remote.test"], subject="Slow one")
        await bounces.wait_for(2, timeout=15)
        delayed, failed = (m.parsed() for m in bounces.messages)
        assert delayed["Subject"] == "Delivery delayed: Slow one"
        (_, d), (_, f) = (m.report() for m in bounces.messages)
        assert (d["Action"], d["Status"]) == ("delayed", "4.2.0") and d["Will-Retry-Until"]
        assert failed["Subject"] == "Undeliverable: Slow one"
        assert (f["Action"], f["Status"]) == ("failed", "4.4.7")
        assert "450 4.2.0 Greylisted" in f["Diagnostic-Code"]
        await asyncio.sleep(0.5)
        assert len(bounces.messages) == 2  # one delay notice only
        assert await out.rows() == [] and peer.messages == []
        assert [e["detail"] for e in out.events("DSN") if e["internal_message_id"] == accepted.queue_id] == [
            "delayed",
            "failed",
        ]
    finally:
        await peer.stop()


async def test_success_notices(out: Outbound, bounces: Peer) -> None:
    """NOTIFY=SUCCESS: "relayed" from us when the peer has no DSN; "expanded" for a group."""
    peer = await Peer("127.0.0.124", MX_PORT, dsn=False).start()
    out.directory.groups["team@corp.test"] = ["x1@remote.test", "x2@remote.test"]
    try:
        await out.submit(SENDER, [EnvelopeRecipient("solo@remote.test", notify="SUCCESS")])
        await out.submit(SENDER, [EnvelopeRecipient("team@corp.test", notify="SUCCESS,FAILURE")])
        await bounces.wait_for(2)
        actions = sorted(b["Action"] for m in bounces.messages for b in m.report()[1:])
        assert actions == ["expanded", "relayed"]  # not one per member: they lost SUCCESS
        await peer.wait_for(2)
        await asyncio.sleep(0.3)
        assert len(bounces.messages) == 2, [
            (b.get("Action"), b.get("Final-Recipient")) for m in bounces.messages for b in m.report()[1:]
        ]
    finally:
        await peer.stop()


async def test_unknown_local_recipient_gets_an_ndr_at_submission(out: Outbound, bounces: Peer) -> None:
    """The categorizer's failure (an authoritative domain without that recipient) is reported in
    the same transaction that commits the message."""
    accepted = await out.submit(SENDER, ["nobody@corp.test"], subject="Typo")
    (ndr,) = await bounces.wait_for(1)
    _, block = ndr.report()
    assert (block["Final-Recipient"], block["Action"], block["Status"]) == (
        "rfc822;nobody@corp.test",
        "failed",
        "5.1.10",
    )
    assert ndr.parsed()["In-Reply-To"] == accepted.message_id  # threads under the original


async def test_a_local_delivery_failure_is_reported_through_the_queue(out: Outbound, bounces: Peer) -> None:
    """A stage that only calls `QueueStore.record` (local delivery: quota exceeded at delivery
    time) gets its NDR from the queue's reporter seam, committed with the failure."""
    blob = await out.blobs.put(b"From: <alice@sender.test>\r\nSubject: Big attachment\r\n\r\nbody\r\n")
    now = time.time()
    rcpt = QueuedRecipient(
        address="bob@corp.test",
        original="bob@corp.test",
        next_hop="mailbox:DB01",
        delivery_type="SmtpDeliveryToMailbox",
        target="guid-bob",
    )
    msg = QueuedMessage(
        id="01LOCALFAILURE000000000000",
        digest=blob.digest,
        size=blob.size,
        sender=SENDER,
        envelope={"recipients": [{"address": "bob@corp.test"}]},
        received_at=now,
        expires_at=now + 60,
        recipients=[rcpt],
    )
    await out.queue.commit(msg)  # committed, never dispatched: the row is read back by the seam
    assert rcpt.id is not None
    await out.queue.record(
        [
            RecipientResult(
                rcpt.id, "failed", "552 5.2.2 Mailbox full: the recipient's mailbox is over its quota"
            )
        ]
    )
    (ndr,) = await bounces.wait_for(1)
    assert ndr.parsed()["Subject"] == "Undeliverable: Big attachment"
    _, block = ndr.report()
    assert (block["Action"], block["Status"]) == ("failed", "5.2.2")
    await out.until(lambda: out.events("SEND"), what="the DSN's SEND")  # its relay is recorded
    assert await out.rows() == []  # the failed message is gone, and so is its DSN


async def test_the_null_sender_is_never_notified(out: Outbound, bounces: Peer) -> None:
    accepted = await out.submit("", ["erin@nullmx.test"])
    await out.until(lambda: out.events("FAIL"), what="FAIL")
    await asyncio.sleep(0.3)
    assert bounces.messages == [] and out.events("DSN") == []
    assert out.events("FAIL")[0]["internal_message_id"] == accepted.queue_id


async def test_notify_never(out: Outbound, bounces: Peer) -> None:
    await out.submit(SENDER, [EnvelopeRecipient("erin@nullmx.test", notify="NEVER")])
    await out.until(lambda: out.events("FAIL"), what="FAIL")
    await asyncio.sleep(0.3)
    assert bounces.messages == []
