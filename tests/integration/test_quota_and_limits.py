"""Mailbox quotas and message size limits, set with the `courriel` command on a running server.

ProhibitSendReceiveQuota: a mailbox at its quota gets 552 5.2.2 at RCPT while the other
recipients of the same transaction get the mail; mail that reaches it through a group fails at
delivery (the same 552 5.2.2, a FAIL event and a non-delivery report to the sender). Size limits
(552, RFC 1870 / RFC 3463): the organization's MaxReceiveSize (anonymous mail) and MaxSendSize
(submissions), a recipient's MaxReceiveSize and a sender's MaxSendSize, at MAIL when SIZE is
declared and after DATA otherwise; what is refused is delivered nowhere.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from courriel.core.replies import Reply
from courriel.transport.receive import replies as R
from tests.integration.mailserver import PASSWORD, MailServer
from tests.integration.server_state import (
    assert_not_delivered,
    delivered_once,
    found,
    poll,
    run,
    settled,
    token,
    tracked,
    unreachable_messages,
)
from tests.integration.smtp_wire import Answer, RawSmtp, client_tls, message, same

ALICE, BOB, TEAM = "alice@example.test", "bob@example.test", "team@example.test"
KB = 1024


def lines(size: int) -> bytes:
    """About `size` octets of body in 1000-octet lines."""
    return (b"b" * 998 + b"\r\n") * (size // 1000 + 1)


def inbound(server: MailServer) -> RawSmtp:
    c = RawSmtp(server.port("frontend"))
    c.ehlo()
    return c


def submission(server: MailServer) -> RawSmtp:
    c = RawSmtp(server.port("client"))
    c.ehlo()
    c.starttls(client_tls(str(server.config.tls_certificate)))
    c.ehlo()
    same(c.auth_plain(ALICE, PASSWORD), R.AUTH_OK)
    return c


def first_reply_to(server: MailServer, open_session: str, mail: str, rcpt: str | None = None) -> Answer:
    """A fresh session's answer to MAIL (and RCPT): for polling until a change applies."""
    with inbound(server) if open_session == "inbound" else submission(server) as c:
        answer = c.cmd(mail)
        return c.cmd(rcpt) if rcpt is not None and answer.code == 250 else answer


def until(server: MailServer, open_session: str, mail: str, rcpt: str | None, expected: Reply) -> None:
    settled(
        lambda: first_reply_to(server, open_session, mail, rcpt),
        lambda answer: answer.is_(expected),
        what=f"{mail} / {rcpt} → {expected.code} {expected.enhanced}",
    )


@pytest.fixture
def bob_full(mailserver: MailServer) -> Iterator[None]:
    """bob holds about 60 KB and his ProhibitSendReceiveQuota is 50 KB (then unlimited again)."""
    fill = token("fill")
    with inbound(mailserver) as c:
        for _ in range(3):
            assert (
                c.transaction("filler@sender.test", [BOB], message(fill, body=lines(20 * KB), message_id=False))[-1].code == 250
            )
    poll(lambda: _count(mailserver, BOB, fill), lambda n: n == 3, what="bob's 60 KB")
    run(mailserver, "mailbox", "set", BOB, "--prohibit-send-receive-quota", "50KB")
    until(mailserver, "inbound", "MAIL FROM:<someone@sender.test>", f"RCPT TO:<{BOB}>", R.MAILBOX_FULL)
    try:
        yield
    finally:
        run(mailserver, "mailbox", "set", BOB, "--prohibit-send-receive-quota", "unlimited")
        until(mailserver, "inbound", "MAIL FROM:<someone@sender.test>", f"RCPT TO:<{BOB}>", R.RECIPIENT_OK)


def _count(server: MailServer, address: str, mark: str) -> int:
    return sum(mark.encode() in m for m in server.inbox(address))


def test_full_mailbox_is_refused_at_rcpt_and_the_others_get_the_mail(
    mailserver: MailServer, bob_full: None
) -> None:
    mark = token("full")
    with inbound(mailserver) as c:
        mail, alice, bob, alias, data, done = c.transaction(
            "someone@sender.test", [ALICE, BOB, "Alice.Smith@example.test"], message(mark)
        )
    same(alice, R.RECIPIENT_OK)
    same(bob, R.MAILBOX_FULL)
    same(alias, R.RECIPIENT_OK)
    assert done.code == 250
    delivered_once(mailserver, [ALICE], mark)
    assert found(mailserver, BOB, mark) == []  # bob was never a recipient of it (nor can a marker reach him)


def test_full_mailbox_reached_through_a_group_fails_at_delivery(
    mailserver: MailServer, bob_full: None
) -> None:
    mark = token("full-team")
    sender = f"{mark}@sender.test"
    with inbound(mailserver) as c:
        assert c.transaction(sender, [TEAM], message(mark, sender=sender))[-1].code == 250
    delivered_once(mailserver, [ALICE], mark)
    events = tracked(mailserver, f"<{mark}@sender.test>", {"DELIVER", "FAIL"})
    assert found(mailserver, BOB, mark) == []
    [fail] = [e for e in events if e["event_id"] == "FAIL"]
    assert fail["recipients"] == [BOB] and fail["recipient_status"].startswith("552 5.2.2 ")
    [deliver] = [e for e in events if e["event_id"] == "DELIVER"]
    assert deliver["recipients"] == [ALICE]
    # The non-delivery report waits for the sender's domain (no send connector), from <>.
    ndr = poll(
        lambda: [m for m in unreachable_messages(mailserver) if m["recipients"] == [sender]],
        lambda found: len(found) == 1,
        what="the non-delivery report",
    )[0]
    assert ndr["from"] == "<>" and mark in ndr["subject"]


def test_organization_size_limits(mailserver: MailServer) -> None:
    """MaxReceiveSize for anonymous mail, MaxSendSize for submissions (Set-TransportConfig)."""
    big, small, sent = token("org-big"), token("org-small"), token("org-sent")
    run(mailserver, "transport-config", "set", "--max-receive-size", "200KB", "--max-send-size", "100KB")
    try:
        until(mailserver, "inbound", "MAIL FROM:<someone@sender.test> SIZE=300000", None, R.ORG_SIZE_EXCEEDED)
        with inbound(mailserver) as c:
            same(
                c.transaction("someone@sender.test", [ALICE], message(big, body=lines(300 * KB)))[-1],
                R.ORG_SIZE_EXCEEDED,
            )
            assert (
                c.transaction("someone@sender.test", [ALICE], message(small, body=lines(150 * KB)))[-1].code
                == 250
            )
        with submission(mailserver) as c:
            same(c.cmd(f"MAIL FROM:<{ALICE}> SIZE=150000"), R.ORG_SIZE_EXCEEDED)
            same(c.transaction(ALICE, [BOB], message(sent, body=lines(150 * KB)))[-1], R.ORG_SIZE_EXCEEDED)
    finally:
        run(mailserver, "transport-config", "set", "--max-receive-size", "10MB", "--max-send-size", "10MB")
    delivered_once(mailserver, [ALICE], small)
    assert_not_delivered(mailserver, [ALICE], big)
    assert_not_delivered(mailserver, [BOB], sent)
    until(mailserver, "inbound", "MAIL FROM:<someone@sender.test> SIZE=300000", None, R.SENDER_OK)


def test_recipient_max_receive_size(mailserver: MailServer) -> None:
    run(mailserver, "mailbox", "set", ALICE, "--max-receive-size", "100KB")
    refused: list[str] = []
    try:

        def attempt() -> Answer:
            refused.append(token("too-big-for-alice"))
            with inbound(mailserver) as c:
                return c.transaction(
                    "someone@sender.test", [ALICE], message(refused[-1], body=lines(150 * KB))
                )[-1]

        settled(attempt, lambda answer: answer.is_(R.RECIPIENT_SIZE_EXCEEDED), what="alice's MaxReceiveSize")
        fits = token("fits-bob")
        with inbound(mailserver) as c:
            assert (
                c.transaction("someone@sender.test", [BOB], message(fits, body=lines(150 * KB)))[-1].code
                == 250
            )
    finally:
        run(mailserver, "mailbox", "set", ALICE, "--max-receive-size", "unlimited")
    delivered_once(mailserver, [BOB], fits)
    assert_not_delivered(mailserver, [ALICE], refused[-1])


def test_sender_max_send_size(mailserver: MailServer) -> None:
    big, small = token("alice-big"), token("alice-small")
    run(mailserver, "mailbox", "set", ALICE, "--max-send-size", "100KB")
    try:
        until(mailserver, "submission", f"MAIL FROM:<{ALICE}> SIZE=150000", None, R.SENDER_SIZE_EXCEEDED)
        with submission(mailserver) as c:
            same(c.transaction(ALICE, [BOB], message(big, body=lines(150 * KB)))[-1], R.SENDER_SIZE_EXCEEDED)
            assert c.transaction(ALICE, [BOB], message(small, body=lines(50 * KB)))[-1].code == 250
        with inbound(mailserver) as c:  # her limit is hers: others may still send her that much
            assert (
                c.transaction("someone@sender.test", [BOB], message(big, body=lines(150 * KB)))[-1].code
                == 250
            )
    finally:
        run(mailserver, "mailbox", "set", ALICE, "--max-send-size", "unlimited")
    delivered_once(mailserver, [BOB], small)
    delivered_once(mailserver, [BOB], big)  # the anonymous copy, and only that one


def test_prohibit_send_quota_stops_submissions_but_not_receiving(mailserver: MailServer) -> None:
    """ProhibitSendQuota: at or over it, the user may not send (554 5.2.2 at MAIL) but still receives."""
    fill = token("sendquota")
    with inbound(mailserver) as c:
        assert c.transaction("filler@sender.test", [ALICE], message(fill, body=lines(20 * KB)))[-1].code == 250
    poll(lambda: _count(mailserver, ALICE, fill), lambda n: n == 1, what="alice's 20 KB")
    run(mailserver, "mailbox", "set", ALICE, "--prohibit-send-quota", "10KB")
    try:
        until(mailserver, "submission", f"MAIL FROM:<{ALICE}>", None, R.SEND_QUOTA_EXCEEDED)
        with inbound(mailserver) as c:  # receiving is ProhibitSendReceiveQuota's business, not this one's
            same(c.cmd("MAIL FROM:<someone@sender.test>"), R.SENDER_OK)
            same(c.cmd(f"RCPT TO:<{ALICE}>"), R.RECIPIENT_OK)
    finally:
        run(mailserver, "mailbox", "set", ALICE, "--prohibit-send-quota", "unlimited")
        until(mailserver, "submission", f"MAIL FROM:<{ALICE}>", None, R.SENDER_OK)
