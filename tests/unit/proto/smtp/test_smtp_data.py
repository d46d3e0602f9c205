"""DATA: end marker, dot-unstuffing, bare line ends, smuggling, limits (RFC 5321 §4.1.1.4, §4.5.2)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from courriel.core.address import Address
from courriel.core.replies import (
    BAD_ARGUMENTS,
    BINARYMIME_NEEDS_BDAT,
    CLOSING,
    MESSAGE_TOO_BIG,
    NEED_MAIL,
    NO_VALID_RECIPIENTS,
    OK,
    QUEUED,
    RECIPIENT_OK,
    SENDER_OK,
    START_MAIL_INPUT,
    TEXT_LINE_TOO_LONG,
    Reply,
)
from courriel.proto.smtp import (
    DecideData,
    DecideHelo,
    DecideMail,
    DecideRcpt,
    MailParams,
    RcptParams,
    Send,
    SessionSettings,
    SmtpSession,
)
from courriel.proto.smtp.data import DotReader, longest_line

from .conftest import Client, FakePolicy

Factory = Callable[..., Client]
ENVELOPE = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"


def deliver(c: Client, body: bytes) -> bytes:
    """Send one message and return what the policy received."""
    assert c.send(ENVELOPE) == [SENDER_OK, RECIPIENT_OK, START_MAIL_INPUT]
    assert c.send(body) == [QUEUED]
    return c.policy.last(DecideData).message  # type: ignore[no-any-return]


def test_message_and_envelope_reach_the_policy(ready: Client) -> None:
    ready.send(b"MAIL FROM:<a@b.example> BODY=8BITMIME\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<e@d.example>\r\n")
    assert ready.send(b"DATA\r\n") == [START_MAIL_INPUT]
    assert ready.send(b"Subject: hi\r\n\r\nbody\r\n.\r\n") == [QUEUED]
    decision = ready.policy.last(DecideData)
    assert decision.message == b"Subject: hi\r\n\r\nbody\r\n"
    assert decision.envelope.sender == Address("a", "b.example")
    assert decision.envelope.params == MailParams(body="8BITMIME")
    assert decision.envelope.recipients == (
        (Address("c", "d.example"), RcptParams()),
        (Address("e", "d.example"), RcptParams()),
    )
    # The transaction is over: a new one starts from MAIL.
    assert ready.send(b"RCPT TO:<c@d.example>\r\n") == [NEED_MAIL]


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b".\r\n", b""),
        (b"..\r\n.\r\n", b".\r\n"),
        (b"..leading dot\r\n.\r\n", b".leading dot\r\n"),
        (b"a\r\n...\r\n..b\r\n.\r\n", b"a\r\n..\r\n.b\r\n"),
        (b".unstuffed\r\n.\r\n", b"unstuffed\r\n"),  # RFC 5321 §4.5.2: the first dot goes
        (b"no dot . here\r\n.\r\n", b"no dot . here\r\n"),
    ],
)
def test_dot_unstuffing(ready: Client, wire: bytes, message: bytes) -> None:
    assert deliver(ready, wire) == message


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        # Only CRLF.CRLF ends the data: these are content (SMTP smuggling, CVE-2023-51764).
        (b"a\n.\nMAIL FROM:<x@y.example>\r\n.\r\n", b"a\r\n\r\nMAIL FROM:<x@y.example>\r\n"),
        (b"a\r.\rb\r\n.\r\n", b"a\r\n\r\nb\r\n"),
        (b"a\n.\r\nb\r\n.\r\n", b"a\r\n\r\nb\r\n"),
        (b"a\r\n.\nb\r\n.\r\n", b"a\r\n\r\nb\r\n"),
        # Bare line ends are normalized (as Postfix's smtpd_forbid_bare_newline=normalize).
        (b"one\ntwo\rthree\r\n.\r\n", b"one\r\ntwo\r\nthree\r\n"),
        (b"x\r\r\n.\r\n", b"x\r\n\r\n"),
    ],
)
def test_only_crlf_dot_crlf_ends_the_data(ready: Client, wire: bytes, message: bytes) -> None:
    assert deliver(ready, wire) == message
    assert b"\n" not in message.replace(b"\r\n", b"")


def test_smuggled_commands_are_not_executed(ready: Client) -> None:
    smuggle = b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<admin@b.example>\nRCPT TO:<v@d.example>\nDATA\n"
    ready.send(ENVELOPE)
    assert ready.send(smuggle + b"evil\r\n.\r\n") == [QUEUED]
    assert len([d for d in ready.policy.seen if isinstance(d, DecideData)]) == 1


def test_any_split_of_the_input_gives_the_same_result() -> None:
    wire = ENVELOPE + b"A: b\r\n\r\n..x\r\nline\n.\nmore\r\n.\r\nQUIT\r\n"
    expected = b"A: b\r\n\r\n.x\r\nline\r\n\r\nmore\r\n"
    for cut in range(len(wire) + 1):
        for step in (1, 3) if cut == 0 else (len(wire),):
            c = Client()
            c.ehlo()
            replies = []
            for pos in range(0, cut, step):
                replies += c.send(wire[pos : min(pos + step, cut)])
            replies += c.send(wire[cut:])
            assert replies == [SENDER_OK, RECIPIENT_OK, START_MAIL_INPUT, QUEUED, CLOSING], cut
            assert c.policy.last(DecideData).message == expected, cut


def test_pipelined_commands_wait_for_each_decision() -> None:
    # RFC 2920: one decision at a time; later commands stay buffered until it is answered.
    session = SmtpSession(SessionSettings("mx.example.com", banner="hi"), peer=("192.0.2.1", 1))
    session.start()
    session.resolve(None)
    [helo] = session.feed(b"EHLO c\r\n" + ENVELOPE + b"body\r\n.\r\n")
    assert isinstance(helo, DecideHelo) and session.awaiting_decision
    send, mail = session.resolve(None)
    assert isinstance(send, Send) and send.data.startswith(b"250-mx.example.com Hello")
    assert isinstance(mail, DecideMail)
    assert session.resolve(SENDER_OK) == [
        Send(SENDER_OK.encode()),
        DecideRcpt(mail.info, Address("c", "d.example"), RcptParams()),
    ]
    send, data = session.resolve(RECIPIENT_OK)
    assert send == Send(RECIPIENT_OK.encode() + START_MAIL_INPUT.encode())
    assert isinstance(data, DecideData) and data.message == b"body\r\n"
    assert session.resolve(QUEUED) == [Send(QUEUED.encode())]
    assert not session.awaiting_decision


def test_data_sequence(ready: Client) -> None:
    assert ready.send(b"DATA\r\n") == [NEED_MAIL]
    ready.send(b"MAIL FROM:<a@b.example>\r\n")
    assert ready.send(b"DATA now\r\n") == [BAD_ARGUMENTS]
    assert ready.send(b"DATA\r\n") == [NO_VALID_RECIPIENTS]


def test_all_recipients_refused(client: Factory) -> None:
    c = client(FakePolicy(rejected_rcpts={"c@d.example"}))
    c.ehlo()
    replies = c.send(ENVELOPE)
    assert replies[2] == NO_VALID_RECIPIENTS
    assert c.send(b"RSET\r\n") == [OK]


def test_binarymime_needs_bdat(ready: Client) -> None:
    ready.send(b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<c@d.example>\r\n")
    assert ready.send(b"DATA\r\n") == [BINARYMIME_NEEDS_BDAT]


def test_message_too_big_is_read_to_the_end_then_refused(client: Factory) -> None:
    c = client(max_message_size=1000)
    c.ehlo()
    c.send(ENVELOPE)
    for _ in range(100):
        assert c.send(b"x" * 998 + b"\r\n") == []
    assert len(c.session._reader._raw) < 2000  # type: ignore[union-attr]  # discarded, not kept
    assert c.send(b".\r\nNOOP\r\n") == [MESSAGE_TOO_BIG, OK]
    assert not any(isinstance(d, DecideData) for d in c.policy.seen)
    assert deliver(c, b"small\r\n.\r\n") == b"small\r\n"


def test_size_limit_is_exact(client: Factory) -> None:
    c = client(max_message_size=100)
    c.ehlo()
    body = b"." * 98 + b"\r\n"  # 100 octets, 101 on the wire once stuffed
    assert deliver(c, b"." + body + b".\r\n") == body
    c.send(ENVELOPE)
    assert c.send(b"." + b"." * 99 + b"\r\n.\r\n") == [MESSAGE_TOO_BIG]


def test_text_line_limit(client: Factory) -> None:
    c = client(max_text_line=100)
    c.ehlo()
    assert deliver(c, b"x" * 100 + b"\r\n.\r\n") == b"x" * 100 + b"\r\n"
    c.send(ENVELOPE)
    assert c.send(b"y\r\n" + b"x" * 101 + b"\r\n.\r\n") == [TEXT_LINE_TOO_LONG]
    assert c.send(b"NOOP\r\n") == [OK]


def test_policy_refusal_ends_the_transaction(client: Factory) -> None:
    refusal = Reply(451, "4.3.0", "Try later")
    c = client(FakePolicy(data=refusal))
    c.ehlo()
    c.send(ENVELOPE)
    assert c.send(b"hi\r\n.\r\n") == [refusal]
    assert c.send(b"RCPT TO:<c@d.example>\r\n") == [NEED_MAIL]


def test_eof_in_the_middle_of_data_delivers_nothing(ready: Client) -> None:
    ready.send(ENVELOPE + b"half a message\r\n")
    ready.eof()
    assert ready.closed
    assert not any(isinstance(d, DecideData) for d in ready.policy.seen)


def test_dot_reader_keeps_what_follows_the_end() -> None:
    reader = DotReader(0)
    buffer = bytearray(b"a\r\n.\r\nNOOP\r\n")
    assert reader.consume(buffer)
    assert buffer == b"NOOP\r\n"
    assert reader.message() == b"a\r\n"


def test_longest_line() -> None:
    assert longest_line(b"ab\r\nabcd\r\nabc") == 4
    assert longest_line(b"abcde") == 5
