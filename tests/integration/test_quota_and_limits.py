"""Mailbox quotas and message size limits, set with the `courriel` command on a running server.

ProhibitSendReceiveQuota: a mailbox at its quota gets 552 5.2.2 at RCPT while the other
recipients of the same transaction get the mail; mail that reaches it through a group fails at
delivery (the same 552 5.2.2, a FAIL event and a non-delivery report to the sender). Size limits
(552, RFC 1870 / RFC 3463): the organization's MaxReceiveSize (anonymous mail) and MaxSendSize
(submissions) and a sender's MaxSendSize, at MAIL when SIZE is declared and after DATA otherwise;
what is refused is delivered nowhere. A recipient's MaxReceiveSize is that recipient's alone
(552 5.2.3): its RCPT is refused when SIZE declared more; after DATA or BDAT the others get the
message and it gets a non-delivery report (a group member by its own limit); only a message too
large for every recipient is refused. IssueWarningQuota: a delivery that leaves a mailbox at or
over it brings its owner one "almost full" message from the postmaster a day, across restarts.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest

from courriel.core.replies import Reply
from courriel.transport.receive import replies as R
from tests.integration.mailserver import PASSWORD, MailServer
from tests.integration.server_state import (
    assert_not_delivered,
    delivered_once,
    flush,
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


@pytest.fixture
def bob_limited(mailserver: MailServer) -> Iterator[None]:
    """bob's MaxReceiveSize is 100 KB (then unlimited again), applied by every worker."""
    run(mailserver, "mailbox", "set", BOB, "--max-receive-size", "100KB")
    until(mailserver, "inbound", "MAIL FROM:<someone@sender.test> SIZE=150000", f"RCPT TO:<{BOB}>", R.RECIPIENT_SIZE_EXCEEDED)
    try:
        yield
    finally:
        run(mailserver, "mailbox", "set", BOB, "--max-receive-size", "unlimited")
        until(mailserver, "inbound", "MAIL FROM:<someone@sender.test> SIZE=150000", f"RCPT TO:<{BOB}>", R.RECIPIENT_OK)


def _refusal(reply: R.Reply) -> tuple[int, bytes]:
    """A reply as smtplib reports a refused recipient."""
    return reply.code, f"{reply.enhanced} {reply.text}".encode()


def _ndr_about(server: MailServer, address: str, mark: str) -> bytes:
    """The one non-delivery report carrying `mark` in `address`'s Inbox."""
    reports = poll(
        lambda: [m for m in found(server, address, mark) if b"multipart/report" in m],
        lambda found: len(found) == 1,
        what=f"the non-delivery report of {mark}",
    )
    return reports[0]


def test_declared_size_refuses_only_the_recipient_it_is_too_large_for(mailserver: MailServer, bob_limited: None) -> None:
    """smtplib declares SIZE (RFC 1870): bob's RCPT gets 552 5.2.3, alice gets the message."""
    mark = token("declared")
    with smtplib.SMTP("127.0.0.1", mailserver.port("frontend")) as client:
        refused = client.sendmail("someone@sender.test", [BOB, ALICE], message(mark, body=lines(150 * KB)))
    assert refused == {BOB: _refusal(R.RECIPIENT_SIZE_EXCEEDED)}
    assert R.RECIPIENT_SIZE_EXCEEDED.code == 552 and R.RECIPIENT_SIZE_EXCEEDED.enhanced == "5.2.3"
    delivered_once(mailserver, [ALICE], mark)
    assert found(mailserver, BOB, mark) == []


def test_after_data_the_others_get_it_and_the_sender_a_report_for_the_one_over(
    mailserver: MailServer, bob_limited: None
) -> None:
    """No SIZE declared: 250 after DATA, and alice (the sender, also a recipient) gets the report."""
    mark = token("after-data")
    with smtplib.SMTP("127.0.0.1", mailserver.port("frontend")) as client:
        client.ehlo()
        assert client.mail(ALICE)[0] == 250  # no SIZE=
        assert client.rcpt(BOB)[0] == 250 and client.rcpt(ALICE)[0] == 250
        assert client.data(message(mark, sender=ALICE, body=lines(150 * KB)))[0] == 250
    events = tracked(mailserver, f"<{mark}@sender.test>", {"DELIVER", "FAIL"})
    [fail] = [e for e in events if e["event_id"] == "FAIL"]
    assert fail["recipients"] == [BOB] and fail["recipient_status"].startswith("552 5.2.3 ")
    ndr = _ndr_about(mailserver, ALICE, mark)
    assert b"Status: 5.2.3" in ndr and f"Final-Recipient: rfc822;{BOB}".encode() in ndr
    assert found(mailserver, BOB, mark) == []
    assert len([m for m in found(mailserver, ALICE, mark) if b"multipart/report" not in m]) == 1


def test_a_group_member_is_held_to_its_own_limit(mailserver: MailServer, bob_limited: None) -> None:
    """team = alice + bob, even with SIZE declared: the group has no limit, bob's applies to bob."""
    mark = token("team-size")
    with smtplib.SMTP("127.0.0.1", mailserver.port("frontend")) as client:
        assert client.sendmail(ALICE, [TEAM], message(mark, sender=ALICE, to=TEAM, body=lines(150 * KB))) == {}
    events = tracked(mailserver, f"<{mark}@sender.test>", {"DELIVER", "FAIL"})
    [fail] = [e for e in events if e["event_id"] == "FAIL"]
    assert fail["recipients"] == [BOB] and fail["recipient_status"].startswith("552 5.2.3 ")
    assert b"Status: 5.2.3" in _ndr_about(mailserver, ALICE, mark)
    assert found(mailserver, BOB, mark) == []
    assert len([m for m in found(mailserver, ALICE, mark) if b"multipart/report" not in m]) == 1


def test_too_large_for_every_recipient_is_refused_after_data_and_bdat(mailserver: MailServer, bob_limited: None) -> None:
    refused, chunked = token("all-over"), token("bdat-some")
    with inbound(mailserver) as c:
        same(c.transaction("someone@sender.test", [BOB], message(refused, body=lines(150 * KB)))[-1], R.RECIPIENT_SIZE_EXCEEDED)
        # RFC 3030 BDAT: the same rules for a chunked message.
        for rcpts, mark, expected in (([BOB], refused, R.RECIPIENT_SIZE_EXCEEDED), ([BOB, ALICE], chunked, None)):
            assert c.cmd("MAIL FROM:<someone@sender.test>").code == 250
            for rcpt in rcpts:
                assert c.cmd(f"RCPT TO:<{rcpt}>").code == 250
            body = message(mark, body=lines(150 * KB))
            [answer] = c.send(f"BDAT {len(body)} LAST\r\n".encode() + body)
            if expected is None:
                assert answer.code == 250, answer
            else:
                same(answer, expected)
    delivered_once(mailserver, [ALICE], chunked)
    assert_not_delivered(mailserver, [BOB], refused)
    assert found(mailserver, BOB, chunked) == []


# -- IssueWarningQuota ------------------------------------------------------------------------

CAROL = "carol@example.test"


def _warnings(server: MailServer, address: str) -> list[bytes]:
    return [m for m in server.inbox(address) if b"Subject: Your mailbox is almost full" in m]


def _send(server: MailServer, to: str, mark: str, size: int) -> None:
    with inbound(server) as c:
        assert c.transaction("filler@sender.test", [to], message(mark, to=to, body=lines(size)))[-1].code == 250


def test_issue_warning_quota_warns_once_a_day_from_the_postmaster(mailserver: MailServer) -> None:
    """carol (50 KB warning quota) crosses it on her second message; more mail, from either
    worker and after a restart, brings no second warning (the claim is in the directory)."""
    run(mailserver, "mailbox", "new", CAROL, "--password", PASSWORD,
        "--issue-warning-quota", "50KB", "--prohibit-send-receive-quota", "1MB", "--max-receive-size", "5MB")
    # The same directory change set her MaxReceiveSize: once every worker refuses 6 MB for her, it knows her quotas.
    until(mailserver, "inbound", "MAIL FROM:<someone@sender.test> SIZE=6000000", f"RCPT TO:<{CAROL}>", R.RECIPIENT_SIZE_EXCEEDED)
    first = token("carol-1")
    _send(mailserver, CAROL, first, 30 * KB)
    delivered_once(mailserver, [CAROL], first)
    assert _warnings(mailserver, CAROL) == []  # about 31 KB: under the warning quota
    second = token("carol-2")
    _send(mailserver, CAROL, second, 30 * KB)
    [warning] = poll(lambda: _warnings(mailserver, CAROL), lambda found: len(found) == 1, what="carol's warning")
    msg = message_from_bytes(warning, policy=policy.default)
    assert msg["From"].addresses[0].addr_spec == "postmaster@example.test"
    assert msg["To"].addresses[0].addr_spec == CAROL and msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_body().get_content()
    assert "Your mailbox is almost full." in body
    assert "50.0 KB (51,200 bytes)" in body and "1.0 MB (1,048,576 bytes)" in body  # the limits, readable
    [received] = [e for e in tracked(mailserver, msg["Message-ID"], {"RECEIVE", "DELIVER"}) if e["event_id"] == "RECEIVE"]
    assert received["sender"] == "" and received["source"] == "STOREDRIVER"  # the null reverse-path
    for i in range(4):  # the two workers each take some
        _send(mailserver, CAROL, token(f"carol-more-{i}"), KB)
    flush(mailserver, [CAROL])
    flush(mailserver, [CAROL])
    assert len(_warnings(mailserver, CAROL)) == 1
    mailserver.stop()
    mailserver.start()
    after = token("carol-restart")
    _send(mailserver, CAROL, after, KB)
    delivered_once(mailserver, [CAROL], after)
    assert len(_warnings(mailserver, CAROL)) == 1
