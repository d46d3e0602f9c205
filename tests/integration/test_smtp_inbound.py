"""Inbound mail on "Default Frontend" (port 25, anonymous): a real server, real clients, real mailboxes.

Each test checks the SMTP replies (against the reply constants) and what became of the mail:
which Inbox holds it, how many times, with which trace header. Covers recipient resolution
(proxy addresses, case, groups, duplicates), the refusals of RFC 5321 (unknown recipients with
tarpit, no valid recipient, too many recipients, long lines, garbage and the error limit), the
ESMTP extensions (PIPELINING RFC 2920, SIZE RFC 1870, 8BITMIME RFC 6152, SMTPUTF8 RFC 6531,
CHUNKING RFC 3030, DSN RFC 3461, STARTTLS RFC 3207), size and hop limits, and aiosmtplib.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
import time

import aiosmtplib
import pytest

from courriel.core import replies as E
from courriel.transport.receive import replies as R
from tests.integration.mailserver import MailServer
from tests.integration.server_state import (
    assert_not_delivered,
    connector_changed,
    delivered,
    delivered_once,
    found,
    header_block,
    poll,
    run,
    token,
)
from tests.integration.smtp_wire import RawSmtp, client_tls, dot_stuffed, message, same

ALICE, BOB, TEAM = "alice@example.test", "bob@example.test", "team@example.test"
FRONTEND = "Default Frontend mx1"


def frontend(server: MailServer) -> RawSmtp:
    client = RawSmtp(server.port("frontend"))
    assert client.greeting.code == 220, client.greeting
    return client


def test_delivered_with_a_received_header_naming_us_and_the_client(mailserver: MailServer) -> None:
    mark = token("plain")
    with frontend(mailserver) as c:
        assert c.greeting.text.startswith("mx1.example.test Courriel ESMTP MAIL service ready at ")
        c.ehlo("client.sender.test")
        mail, rcpt, data, done = c.transaction("someone@sender.test", [ALICE], message(mark))
    same(mail, R.SENDER_OK)
    same(rcpt, R.RECIPIENT_OK)
    same(data, E.START_MAIL_INPUT)
    assert done.code == 250 and done.enhanced == "2.6.0"
    assert done.text.startswith(f"2.6.0 <{mark}@sender.test> [InternalId=") and done.text.endswith(
        "Queued mail for delivery"
    )
    raw = delivered_once(mailserver, [ALICE], mark)[ALICE]
    assert found(mailserver, BOB, mark) == []
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    received = " ".join(parsed.get_all("Received", [""])[0].split())
    assert raw.startswith(
        b"Received: from client.sender.test ([127.0.0.1])\r\n\tby mx1.example.test (Courriel)"
    )
    assert " with ESMTP id " in received and f"for <{ALICE}>;" in received
    assert received.endswith(" +0000")  # UTC, stated as such (RFC 5322 §3.3: "-0000" means unknown)
    assert parsed["Subject"] == mark and parsed["Message-ID"] == f"<{mark}@sender.test>"
    assert raw.endswith(f"\r\n\r\ntoken={mark}\r\n".encode())


def test_an_ehlo_name_that_is_no_domain_stays_in_the_received_comment(mailserver: MailServer) -> None:
    mark = token("odd-ehlo")
    with frontend(mailserver) as c:
        c.ehlo("odd;name(x)")
        assert c.transaction("someone@sender.test", [ALICE], message(mark))[-1].code == 250
    raw = delivered_once(mailserver, [ALICE], mark)[ALICE]
    assert raw.startswith(
        b"Received: from [127.0.0.1] ([127.0.0.1] helo=odd;namex)\r\n\tby mx1.example.test "
    )


@pytest.mark.parametrize(
    "address", ["ALICE.SMITH@EXAMPLE.TEST", "alice.smith@example.test", "Alice@Example.Test"]
)
def test_proxy_addresses_match_case_insensitively(mailserver: MailServer, address: str) -> None:
    mark = token("case")
    with smtplib.SMTP("127.0.0.1", mailserver.port("frontend"), timeout=15) as smtp:
        refused = smtp.sendmail("someone@sender.test", [address], message(mark, to=address))
    assert refused == {}
    delivered_once(mailserver, [ALICE], mark)
    assert found(mailserver, BOB, mark) == []


@pytest.mark.parametrize(
    "recipients",
    [[TEAM], [TEAM, ALICE], [ALICE, TEAM, "Alice.Smith@example.test", "BOB@example.test"]],
    ids=["group", "group-and-member", "group-member-alias-and-member"],
)
def test_group_expansion_delivers_once_to_each_member(mailserver: MailServer, recipients: list[str]) -> None:
    mark = token("team")
    with smtplib.SMTP("127.0.0.1", mailserver.port("frontend"), timeout=15) as smtp:
        assert smtp.sendmail("someone@sender.test", recipients, message(mark, to=TEAM)) == {}
    copies = delivered_once(mailserver, [ALICE, BOB], mark)
    # The Received header names the envelope recipient only when there is just one (RFC 5321 §7.2).
    trace = copies[ALICE].split(b";", 1)[0]
    assert (b"\r\n\tfor <team@example.test>" in trace) == (recipients == [TEAM])
    assert trace.count(b"for <") <= 1


def test_unknown_recipient_is_refused_and_the_others_get_the_mail(mailserver: MailServer) -> None:
    mark = token("unknown")
    with frontend(mailserver) as c:
        c.ehlo()
        answers = c.transaction("someone@sender.test", ["nobody@example.test", BOB], message(mark))
    same(answers[1], R.UNKNOWN_RECIPIENT)
    same(answers[2], R.RECIPIENT_OK)
    assert answers[-1].code == 250
    delivered_once(mailserver, [BOB], mark)
    assert found(mailserver, ALICE, mark) == []


def test_tarpit_spares_the_first_three_unknown_recipients(mailserver: MailServer) -> None:
    with (
        connector_changed(mailserver, FRONTEND, mailserver.port("frontend"), tarpit_interval="2s"),
        frontend(mailserver) as c,
    ):
        c.ehlo()
        same(c.cmd("MAIL FROM:<someone@sender.test>"), R.SENDER_OK)
        for i in range(3):
            answer, took = c.timed(f"RCPT TO:<nobody{i}@example.test>")
            same(answer, R.UNKNOWN_RECIPIENT)
            assert took < 1.5, f"unknown recipient {i + 1} was delayed {took:.2f} s"
        answer, took = c.timed("RCPT TO:<nobody3@example.test>")
        same(answer, R.UNKNOWN_RECIPIENT)
        assert took >= 1.8, f"the fourth unknown recipient was answered after {took:.2f} s"
        same(c.cmd(f"RCPT TO:<{ALICE}>"), R.RECIPIENT_OK)  # known recipients are not delayed


def test_data_without_a_valid_recipient_gets_554(mailserver: MailServer) -> None:
    with frontend(mailserver) as c:
        c.ehlo()
        same(c.cmd("MAIL FROM:<someone@sender.test>"), R.SENDER_OK)
        same(c.cmd("RCPT TO:<nobody@example.test>"), R.UNKNOWN_RECIPIENT)
        same(c.cmd("RCPT TO:<somebody@external.test>"), R.RELAY_DENIED)
        same(c.cmd("DATA"), E.NO_VALID_RECIPIENTS)
        same(c.cmd("NOOP"), E.OK)  # the session goes on


def test_pipelined_transaction_in_one_write(mailserver: MailServer) -> None:
    mark = token("pipelined")
    with frontend(mailserver) as c:
        assert "PIPELINING" in c.ehlo()
        batch = f"MAIL FROM:<someone@sender.test>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n"
        mail, alice, nobody, bob, data = c.send(batch.encode(), replies=5)
        same(mail, R.SENDER_OK)
        same(alice, R.RECIPIENT_OK)
        same(nobody, R.UNKNOWN_RECIPIENT)
        same(bob, R.RECIPIENT_OK)
        same(data, E.START_MAIL_INPUT)
        done, bye = c.send(dot_stuffed(message(mark, body=b".leading dot\r\n")) + b".\r\nQUIT\r\n", replies=2)
        assert done.code == 250
        same(bye, E.CLOSING)
    copies = delivered_once(mailserver, [ALICE, BOB], mark)
    assert copies[BOB].endswith(b"\r\n.leading dot\r\n")


def test_size_parameter_over_the_limits_is_refused_at_mail(mailserver: MailServer) -> None:
    with frontend(mailserver) as c:
        assert "SIZE 37748736" in c.ehlo()  # the connector's 36 MB (RFC 1870)
        same(c.cmd("MAIL FROM:<someone@sender.test> SIZE=40000000"), E.MESSAGE_TOO_BIG)
        # Under the connector's limit but over the organization's MaxReceiveSize (10 MB).
        same(c.cmd("MAIL FROM:<someone@sender.test> SIZE=11000000"), R.ORG_SIZE_EXCEEDED)
        same(c.cmd("MAIL FROM:<someone@sender.test> SIZE=2000"), R.SENDER_OK)


def test_oversize_body_is_refused_and_not_delivered(mailserver: MailServer) -> None:
    mark = token("oversize")
    big = (b"x" * 998 + b"\r\n") * (10_600_000 // 1000)  # over MaxReceiveSize, no SIZE declared
    with frontend(mailserver) as c:
        c.ehlo()
        answers = c.transaction("someone@sender.test", [ALICE], message(mark, body=big))
        same(answers[-1], R.ORG_SIZE_EXCEEDED)
        same(c.cmd("NOOP"), E.OK)
    assert_not_delivered(mailserver, [ALICE], mark)


def test_recipients_over_the_connector_limit_get_452(mailserver: MailServer) -> None:
    mark = token("limit")
    with (
        connector_changed(mailserver, FRONTEND, mailserver.port("frontend"), max_recipients_per_message="3"),
        frontend(mailserver) as c,
    ):
        c.ehlo()
        answers = c.transaction(
            "someone@sender.test", [ALICE, BOB, TEAM, "Alice.Smith@example.test"], message(mark)
        )
    assert [a.code for a in answers[1:4]] == [250, 250, 250]
    same(answers[4], E.TOO_MANY_RECIPIENTS)
    assert answers[-1].code == 250
    delivered_once(mailserver, [ALICE, BOB], mark)


def test_too_long_command_line_gets_500_and_the_session_goes_on(mailserver: MailServer) -> None:
    with frontend(mailserver) as c:
        c.ehlo()
        same(c.cmd("NOOP " + "x" * 600), E.LINE_TOO_LONG)
        same(c.cmd("RCPT TO:<" + "a" * 2000 + "@example.test>"), E.LINE_TOO_LONG)
        same(c.cmd("NOOP"), E.OK)


def test_garbage_gets_errors_then_421_and_the_server_serves_the_next_client(mailserver: MailServer) -> None:
    with frontend(mailserver) as c:
        answers = c.send(b"\x00\xff\xfe\x01garbage\r\n" * 4 + b"\x80\x81\r\n", replies=6)
        assert all(a.is_(E.SYNTAX_ERROR) for a in answers[:5]), answers
        same(answers[5], E.TOO_MANY_ERRORS)
        assert c.closed_by_server()
    mark = token("after-garbage")
    with frontend(mailserver) as c:
        c.ehlo()
        assert c.transaction("someone@sender.test", [ALICE], message(mark))[-1].code == 250
    delivered_once(mailserver, [ALICE], mark)


def test_many_bad_commands_end_the_session(mailserver: MailServer) -> None:
    with frontend(mailserver) as c:
        c.ehlo()
        same(c.cmd("FROB nicate"), E.UNKNOWN_COMMAND)
        same(c.cmd(f"RCPT TO:<{ALICE}>"), E.NEED_MAIL)
        same(c.cmd("MAIL FROM:alice"), E.BAD_ARGUMENTS)
        same(c.cmd("DATA"), E.NEED_MAIL)
        last = c.send(b"EXPN team\r\n", replies=2)
        same(last[0], E.NOT_IMPLEMENTED)
        same(last[1], E.TOO_MANY_ERRORS)
        assert c.closed_by_server()
    with frontend(mailserver) as c:
        same(c.cmd("NOOP"), E.OK)


def test_8bitmime_body_is_delivered_byte_for_byte(mailserver: MailServer) -> None:
    mark = token("8bit")
    body = "Grüße aus Köln, ½ € — 日本語\r\n".encode()
    with frontend(mailserver) as c:
        assert "8BITMIME" in c.ehlo()
        answers = c.transaction(
            "someone@sender.test", [BOB], message(mark, body=body), mail_params="BODY=8BITMIME"
        )
    assert answers[-1].code == 250
    assert delivered_once(mailserver, [BOB], mark)[BOB].endswith(body)


def test_smtputf8_sender_is_delivered(mailserver: MailServer) -> None:
    mark = token("utf8")
    sender = "jöran@exämple.de"
    with frontend(mailserver) as c:
        assert "SMTPUTF8" in c.ehlo()
        same(c.cmd(f"MAIL FROM:<{sender}>"), E.UTF8_NOT_PERMITTED)  # RFC 6531 §3.4
        answers = c.transaction(
            sender, [ALICE], message(mark, sender=sender), mail_params="SMTPUTF8 BODY=8BITMIME"
        )
    same(answers[0], R.SENDER_OK)
    assert answers[-1].code == 250
    raw = delivered_once(mailserver, [ALICE], mark)[ALICE]
    assert " with UTF8SMTP id " in " ".join(header_block(raw).split())  # RFC 6531 §4.3
    assert f"From: {sender}\r\n".encode() in raw


def test_bdat_chunks_are_delivered(mailserver: MailServer) -> None:
    mark = token("bdat")
    first = message(mark)
    second = b"second chunk, no dot stuffing:\r\n.\r\n" * 100
    with frontend(mailserver) as c:
        assert "CHUNKING" in c.ehlo()
        answers = c.send(
            f"MAIL FROM:<someone@sender.test>\r\nRCPT TO:<{ALICE}>\r\n".encode()
            + b"BDAT %d\r\n" % len(first)
            + first
            + b"BDAT %d LAST\r\n" % len(second)
            + second,
            replies=4,
        )
    assert answers[2].text == f"2.0.0 {len(first)} octets received"
    assert answers[3].code == 250 and answers[3].enhanced == "2.6.0"
    raw = delivered_once(mailserver, [ALICE], mark)[ALICE]
    assert raw.endswith(first + second)


def test_dsn_parameters_are_accepted(mailserver: MailServer) -> None:
    mark = token("dsn")
    with frontend(mailserver) as c:
        assert "DSN" in c.ehlo()
        same(c.cmd(f"MAIL FROM:<someone@sender.test> RET=HDRS ENVID={mark}"), R.SENDER_OK)
        same(
            c.cmd(f"RCPT TO:<{ALICE}> NOTIFY=FAILURE,DELAY ORCPT=rfc822;Alice.Smith@example.test"),
            R.RECIPIENT_OK,
        )
        same(c.cmd(f"RCPT TO:<{BOB}> NOTIFY=NEVER"), R.RECIPIENT_OK)
        same(c.cmd("DATA"), E.START_MAIL_INPUT)
        assert c.send(dot_stuffed(message(mark)) + b".\r\n")[0].code == 250
    delivered_once(mailserver, [ALICE, BOB], mark)


def test_starttls_then_mail(mailserver: MailServer) -> None:
    mark = token("tls")
    with frontend(mailserver) as c:
        assert "STARTTLS" in c.ehlo()
        c.starttls(client_tls(str(mailserver.config.tls_certificate)))
        features = c.ehlo("tls.sender.test")
        assert "STARTTLS" not in features
        assert not any(f.startswith("AUTH") for f in features)  # no ExchangeUsers on this connector
        assert c.transaction("someone@sender.test", [BOB], message(mark))[-1].code == 250
    raw = delivered_once(mailserver, [BOB], mark)[BOB]
    assert " with ESMTPS (TLS) id " in " ".join(header_block(raw).split())


def test_hop_count_exceeded_is_refused(mailserver: MailServer) -> None:
    mark = token("loop")
    hops = "".join(
        f"Received: from hop{i}.test by hop{i + 1}.test; Mon, 2 Nov 2026 10:00:00 +0000\r\n"
        for i in range(30)
    )
    with frontend(mailserver) as c:
        c.ehlo()
        answers = c.transaction("someone@sender.test", [ALICE], message(mark, headers=hops))
    same(answers[-1], R.HOP_COUNT_EXCEEDED)
    assert_not_delivered(mailserver, [ALICE], mark)


async def test_aiosmtplib_with_starttls(mailserver: MailServer) -> None:
    mark = token("aiosmtplib")
    errors, response = await aiosmtplib.send(
        message(mark, to=BOB),
        sender="someone@sender.test",
        recipients=[BOB, "nobody@example.test"],
        hostname="127.0.0.1",
        port=mailserver.port("frontend"),
        start_tls=True,
        tls_context=client_tls(str(mailserver.config.tls_certificate)),
        timeout=15,
    )
    assert response.startswith(f"2.6.0 <{mark}@sender.test>")
    assert errors["nobody@example.test"].code == 550
    assert errors["nobody@example.test"].message.startswith("5.1.10 ")
    raw = (await asyncio.to_thread(delivered, mailserver, BOB, mark))[0]
    assert " with ESMTPS (TLS) id " in " ".join(header_block(raw).split())


def test_postmaster_is_accepted_without_any_right_and_reaches_the_postmaster(mailserver: MailServer) -> None:
    """RFC 5321 §4.5.1: <Postmaster> and postmaster@<accepted domain> MUST be accepted; the mail
    goes to TransportConfig.PostmasterAddress when no recipient holds the address."""
    with frontend(mailserver) as c:
        c.ehlo()
        same(c.cmd("MAIL FROM:<someone@sender.test>"), R.SENDER_OK)
        same(c.cmd("RCPT TO:<Postmaster>"), R.RECIPIENT_OK)
        same(c.cmd("RCPT TO:<POSTMASTER@example.test>"), R.RECIPIENT_OK)
        same(c.cmd("RCPT TO:<postmaster@elsewhere.test>"), R.RELAY_DENIED)  # not a domain we serve
    run(mailserver, "transport-config", "set", "--postmaster-address", ALICE)
    try:
        def attempt() -> bool:
            mark = token("postmaster")
            with frontend(mailserver) as c:
                c.ehlo()
                assert c.transaction("someone@sender.test", ["Postmaster"], message(mark))[-1].code == 250
            deadline = time.monotonic() + 3  # the directory change reaches each worker within ~1 s
            while time.monotonic() < deadline:
                if found(mailserver, ALICE, mark):
                    return True
                time.sleep(0.2)
            return False

        poll(attempt, bool, what="mail to <Postmaster> in alice's Inbox")
    finally:
        run(mailserver, "transport-config", "set", "--postmaster-address", "")
