"""Bounded input: line length (RFC 5321 §4.5.3.1.4), error limits, input behind a decision."""

from __future__ import annotations

from collections.abc import Callable

from courriel.core.replies import (
    INPUT_OVERFLOW,
    LINE_TOO_LONG,
    OK,
    PARAMS_UNRECOGNIZED,
    SENDER_OK,
    TOO_MANY_ERRORS,
    UNKNOWN_COMMAND,
)
from courriel.proto.smtp import Close, DecideMail, Send, SessionSettings, SmtpSession

from .conftest import Client

Factory = Callable[..., Client]


def test_command_line_over_512_octets_is_refused_and_skipped(ready: Client) -> None:
    assert ready.send(b"NOOP " + b"x" * 505 + b"\r\n") == [OK]  # 512 with CRLF
    assert ready.send(b"NOOP " + b"x" * 506 + b"\r\nNOOP\r\n") == [LINE_TOO_LONG, OK]


def test_long_line_without_end_is_refused_once_and_not_buffered(ready: Client) -> None:
    assert ready.send(b"NOOP " + b"x" * 600) == [LINE_TOO_LONG]
    assert ready.send(b"x" * 100_000) == []
    assert len(ready.session._input) == 0
    assert ready.send(b"xx\r\nNOOP\r\n") == [OK]


def test_mail_and_rcpt_lines_get_room_for_extension_parameters(client: Factory) -> None:
    c = client(tls_active=True)  # so that AUTH= is accepted
    c.ehlo()
    envid = b"E" * 100
    line = (
        b"MAIL FROM:<" + b"a" * 64 + b"@" + b"b" * 60 + b".example> ENVID=" + envid + b" AUTH=" + b"c" * 400
    )
    assert 512 < len(line) < 1500
    assert c.send(line + b"\r\n") == [SENDER_OK]
    assert c.send(b"RCPT TO:<x@y.example> ORCPT=" + b"z" * 1600 + b"\r\n") == [LINE_TOO_LONG]


def test_too_many_protocol_errors_close_the_session(ready: Client) -> None:
    for _ in range(4):
        assert ready.send(b"BOGUS\r\n") == [UNKNOWN_COMMAND]
    assert ready.send(b"BOGUS\r\nNOOP\r\n") == [UNKNOWN_COMMAND, TOO_MANY_ERRORS]
    assert ready.closed


def test_pipelined_errors_stop_at_the_limit(client: Factory) -> None:
    c = client(max_protocol_errors=2)
    assert c.send(b"A\r\nB\r\nC\r\nD\r\n") == [UNKNOWN_COMMAND, UNKNOWN_COMMAND, TOO_MANY_ERRORS]


def test_error_limit_zero_means_unlimited(client: Factory) -> None:
    c = client(max_protocol_errors=0)
    assert c.send(b"X\r\n" * 50) == [UNKNOWN_COMMAND] * 50
    assert not c.closed


def test_policy_refusals_are_not_protocol_errors(client: Factory) -> None:
    c = client(max_protocol_errors=1)
    c.ehlo()
    assert c.send(b"MAIL FROM:<a@b.example> SIZE=99999999999\r\n")[0].code == 552
    assert not c.closed
    assert c.send(b"MAIL FROM:<a@b.example> FOO=1\r\n") == [PARAMS_UNRECOGNIZED, TOO_MANY_ERRORS]


def test_input_behind_a_pending_decision_is_capped() -> None:
    settings = SessionSettings("mx.example.com", banner="hi", max_pending_input=4096)
    session = SmtpSession(settings, peer=("192.0.2.1", 1))
    session.start()
    session.resolve(None)
    session.feed(b"EHLO x\r\n")
    session.resolve(None)
    [decision] = session.feed(b"MAIL FROM:<a@b.example>\r\n")
    assert isinstance(decision, DecideMail)
    assert session.feed(b"NOOP\r\n" * 100) == []  # pipelined, waits for the decision
    actions = session.feed(b"NOOP\r\n" * 1000)
    assert actions == [Send(INPUT_OVERFLOW.encode()), Close()]
    assert session.resolve(SENDER_OK) == []
