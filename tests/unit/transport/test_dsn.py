"""DSNs (RFC 3464): who gets one, and the message, read back with the standard email package."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage, Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from courriel.transport import dsn
from courriel.transport.dsn import Notice, RecipientNotice, build_dsn, status_of, wants_notice

ORIGINAL = (
    b"Received: from client.example.org by mx.example.com; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"From: Alice <alice@example.com>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: Quarterly figures\r\n"
    b"Message-ID: <orig-1@example.com>\r\n"
    b"\r\n"
    b"Hello Bob,\r\n.leading dot stays as is\r\nBODY-MARKER\r\n"
)
NOW = 1_700_000_000.0


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert not msg.defects, msg.defects
    return msg


def notice(
    *recipients: RecipientNotice,
    ret: str | None = None,
    envid: str | None = "ENV-42",
    original: bytes = ORIGINAL,
) -> Notice:
    return Notice(
        reporting_mta="mbx01.example.com",
        to="alice@example.com",
        arrival=NOW - 3600,
        original=original,
        recipients=recipients,
        envid=envid,
        ret=ret,
    )


def status_blocks(report: EmailMessage) -> list[Message]:
    part = report.get_payload()[1]
    assert part.get_content_type() in ("message/delivery-status", "message/global-delivery-status")
    blocks = part.get_payload()
    assert isinstance(blocks, list)
    return blocks


FAILED = RecipientNotice(
    final_recipient="bob@example.net",
    action="failed",
    error="550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown",
    original_recipient="rfc822;Bob@Example.NET",
    remote_mta="mx1.example.net",
    last_attempt=NOW,
)


def test_failure_report_structure_and_fields() -> None:
    msg = parse(build_dsn(notice(FAILED), now=NOW, message_id="<dsn-1@mbx01.example.com>"))
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Subject"] == "Undeliverable: Quarterly figures"
    assert msg["To"].addresses[0].addr_spec == "alice@example.com"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["In-Reply-To"] == "<orig-1@example.com>"
    text, _, returned = msg.get_payload()
    assert text.get_content_type() == "text/plain"  # the readable part comes first
    body = text.get_content()
    assert "couldn't be delivered" in body and "bob@example.net" in body and "User unknown" in body
    per_message, per_rcpt = status_blocks(msg)
    assert per_message["Reporting-MTA"] == "dns; mbx01.example.com"
    assert per_message["Original-Envelope-Id"] == "ENV-42"
    assert per_message["Arrival-Date"] == "Tue, 14 Nov 2023 21:13:20 +0000"
    assert per_rcpt["Original-Recipient"] == "rfc822;Bob@Example.NET"
    assert per_rcpt["Final-Recipient"] == "rfc822;bob@example.net"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "5.1.1"
    assert per_rcpt["Remote-MTA"] == "dns; mx1.example.net"
    assert per_rcpt["Diagnostic-Code"].startswith("smtp; 550 5.1.1 <bob@example.net>")
    assert per_rcpt["Last-Attempt-Date"]
    # RET absent on a failure: the whole message comes back, byte for byte.
    assert returned.get_content_type() == "message/rfc822"
    inner = returned.get_payload()[0]
    assert inner["Message-ID"] == "<orig-1@example.com>"
    assert "BODY-MARKER" in inner.get_content()


def test_ret_hdrs_returns_the_header_only() -> None:
    msg = parse(build_dsn(notice(FAILED, ret="HDRS"), now=NOW, message_id="<d@x>"))
    returned = msg.get_payload()[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    content = returned.get_payload(decode=True)
    assert b"Subject: Quarterly figures" in content and b"BODY-MARKER" not in content


def test_delay_report_has_retry_until_and_no_body() -> None:
    delayed = RecipientNotice(
        "bob@example.net", "delayed", "451 4.4.1 Connection timed out", will_retry_until=NOW + 86400
    )
    msg = parse(build_dsn(notice(delayed), now=NOW, message_id="<d@x>"))
    assert msg["Subject"] == "Delivery delayed: Quarterly figures"
    _, per_rcpt = status_blocks(msg)
    assert per_rcpt["Action"] == "delayed"
    assert per_rcpt["Status"] == "4.4.1"
    assert per_rcpt["Will-Retry-Until"] == "Wed, 15 Nov 2023 22:13:20 +0000"
    assert "Original-Recipient" not in per_rcpt  # RFC 3464 §2.3.1: only when ORCPT was given
    assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"  # RFC 3461 §4.3


@pytest.mark.parametrize(
    ("action", "subject"),
    [("delivered", "Delivered"), ("relayed", "Relayed"), ("expanded", "Expanded")],
)
def test_success_kinds(action: str, subject: str) -> None:
    msg = parse(
        build_dsn(notice(RecipientNotice("bob@example.net", action), ret="FULL"), now=NOW, message_id="<d@x>")
    )
    assert msg["Subject"] == f"{subject}: Quarterly figures"
    _, per_rcpt = status_blocks(msg)
    assert (per_rcpt["Action"], per_rcpt["Status"]) == (action, "2.0.0")
    assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"


def test_mixed_actions_in_one_report() -> None:
    ok = RecipientNotice("carol@example.net", "delivered")
    msg = parse(build_dsn(notice(ok, FAILED), now=NOW, message_id="<d@x>"))
    assert msg["Subject"].startswith("Undeliverable")
    assert [b["Action"] for b in status_blocks(msg)[1:]] == ["delivered", "failed"]


def test_expiry_keeps_its_transient_status() -> None:
    expired = RecipientNotice(
        "bob@example.net", "failed", "550 4.4.7 Message expired. Last error: 451 4.4.1 timeout"
    )
    _, per_rcpt = status_blocks(parse(build_dsn(notice(expired), now=NOW, message_id="<d@x>")))
    assert per_rcpt["Status"] == "4.4.7"


def test_internationalized_addresses_use_the_global_types() -> None:
    utf8 = RecipientNotice("用户@例子.广告", "failed", "550 5.1.1 unknown")
    original = ORIGINAL.replace(b"To: bob@example.net", "To: 用户@例子.广告".encode())
    data = build_dsn(notice(utf8, original=original), now=NOW, message_id="<d@x>")
    msg = parse(data)
    assert msg.get_payload()[1].get_content_type() == "message/global-delivery-status"
    assert "Final-Recipient: utf-8;用户@例子.广告" in data.decode()
    assert msg.get_payload()[2].get_content_type() == "message/global"


def test_non_ascii_subject_is_encoded() -> None:
    original = ORIGINAL.replace(b"Quarterly figures", "Résumé €".encode())
    data = build_dsn(notice(FAILED, original=original), now=NOW, message_id="<d@x>")
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # RFC 2047 in our own header
    assert parse(data)["Subject"] == "Undeliverable: Résumé €"
    returned = parse(data).get_payload()[2]
    assert returned["Content-Transfer-Encoding"] == "8bit"  # RFC 2046 §5.2.1: no other encoding


def test_large_message_comes_back_as_header_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dsn, "MAX_RETURNED_CONTENT", 100)
    msg = parse(build_dsn(notice(FAILED), now=NOW, message_id="<d@x>"))
    assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"


def test_no_recipients_is_an_error() -> None:
    with pytest.raises(ValueError):
        build_dsn(notice(), now=NOW, message_id="<d@x>")
    with pytest.raises(ValueError):
        RecipientNotice("a@b", "bounced")


@pytest.mark.parametrize(
    ("sender", "notify", "action", "expected"),
    [
        ("a@x", None, "failed", True),
        ("a@x", None, "delayed", True),  # the default is FAILURE,DELAY
        ("a@x", None, "delivered", False),
        ("a@x", "SUCCESS", "delivered", True),
        ("a@x", "SUCCESS", "relayed", True),
        ("a@x", "SUCCESS", "failed", False),
        ("a@x", "success,failure", "failed", True),
        ("a@x", "NEVER", "failed", False),
        ("a@x", "DELAY", "delayed", True),
        ("", None, "failed", False),  # never to the null sender
        ("", "SUCCESS,FAILURE,DELAY", "failed", False),
    ],
)
def test_who_is_notified(sender: str, notify: str | None, action: str, expected: bool) -> None:
    assert wants_notice(sender, notify, action) is expected


@pytest.mark.parametrize(
    ("error", "action", "status"),
    [
        ("550 5.7.1 relay denied", "failed", "5.7.1"),
        ("554 no enhanced code", "failed", "5.0.0"),
        ("451 4.4.0 dns", "delayed", "4.4.0"),
        ("451 try later", "delayed", "4.0.0"),
        (None, "failed", "5.0.0"),
        ("250 2.1.5 ok", "relayed", "2.1.5"),
        ("550 5.1.1 x", "delivered", "2.0.0"),
    ],
)
def test_status_codes(error: str | None, action: str, status: str) -> None:
    assert status_of(error, action) == status


_addresses = st.from_regex(r"[a-z0-9._-]{1,20}@[a-z0-9-]{1,15}\.[a-z]{2,6}", fullmatch=True)
_errors = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.from_regex(r"[45][0-9]{2} [45]\.[0-9]\.[0-9]{1,2} .{0,200}", fullmatch=True),
)


@settings(max_examples=60, deadline=None)
@given(
    rcpts=st.lists(st.tuples(_addresses, st.sampled_from(dsn.ACTIONS), _errors), min_size=1, max_size=5),
    subject=st.text(max_size=120),
    body=st.binary(max_size=500),
    ret=st.sampled_from([None, "FULL", "HDRS"]),
)
def test_any_report_parses(
    rcpts: list[tuple[str, str, str | None]], subject: str, body: bytes, ret: str | None
) -> None:
    clean = " ".join(subject.split())
    original = f"Subject: {clean}\r\nFrom: a@b\r\n\r\n".encode() + body.replace(b"\r", b"").replace(
        b"\n", b"\r\n"
    )
    notices = [RecipientNotice(a, action, error) for a, action, error in rcpts]
    data = build_dsn(notice(*notices, ret=ret, original=original), now=NOW, message_id="<d@x>")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    parts = msg.get_payload()
    assert len(parts) == 3
    blocks = status_blocks(msg)  # type: ignore[arg-type]
    assert [b["Final-Recipient"] for b in blocks[1:]] == [f"rfc822;{a}" for a, _, _ in rcpts]
