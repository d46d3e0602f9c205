"""Greeting, EHLO/HELO and the simple commands (RFC 5321 §3.1, §4.1.1, RFC 2034 §3)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from courriel.core.replies import (
    BAD_ARGUMENTS,
    CANNOT_VRFY,
    CLOSING,
    HELP,
    NEED_HELO,
    NO_SERVICE,
    NOT_IMPLEMENTED,
    OK,
    SENDER_OK,
    SYNTAX_ERROR,
    UNKNOWN_COMMAND,
    Reply,
)
from courriel.proto.smtp import DecideConnect, DecideHelo, Send, SessionSettings, SmtpSession

from .conftest import Client, FakePolicy

Factory = Callable[..., Client]
HELLO = "mx.example.com Hello [192.0.2.1]"


def test_default_banner_names_us_and_the_date() -> None:
    session = SmtpSession(SessionSettings("mx.example.com"), peer=("192.0.2.1", 1))
    [decision] = session.start()
    assert isinstance(decision, DecideConnect)
    assert decision.info.peer_ip == "192.0.2.1" and decision.info.helo is None
    [send] = session.resolve(None)
    assert isinstance(send, Send)
    assert re.fullmatch(
        rb"220 mx\.example\.com Courriel ESMTP MAIL service ready at \w{3}, \d{1,2} \w{3} \d{4} "
        rb"\d\d:\d\d:\d\d [+-]\d{4}\r\n",
        send.data,
    )


def test_custom_banner(client: Factory) -> None:
    assert client(banner="welcome").greeting == [Reply(220, None, "welcome")]


def test_policy_greeting_replaces_the_banner(client: Factory) -> None:
    c = client(FakePolicy(connect=Reply(220, None, "hi there")))
    assert c.greeting == [Reply(220, None, "hi there")]


def test_refused_connection_serves_only_quit(client: Factory) -> None:
    # RFC 5321 §3.1: 554 greeting, then 503 to everything but QUIT.
    c = client(FakePolicy(connect=Reply(554, "5.7.1", "Go away")))
    assert c.greeting == [Reply(554, "5.7.1", "Go away")]
    assert c.ehlo() == [NO_SERVICE]
    assert c.send(b"MAIL FROM:<a@b.example>\r\n") == [NO_SERVICE]
    assert c.send(b"QUIT\r\n") == [CLOSING]
    assert c.closed


def test_transient_refusal_becomes_421_and_closes(client: Factory) -> None:
    c = client(FakePolicy(connect=Reply(451, "4.3.0", "Busy")))
    assert c.greeting == [Reply(421, "4.3.0", "Busy")]
    assert c.closed
    assert c.send(b"EHLO x\r\n") == []


def test_early_talker_is_answered_after_the_greeting() -> None:
    session = SmtpSession(SessionSettings("mx.example.com", banner="hi"), peer=("192.0.2.1", 1))
    session.start()
    assert session.feed(b"NOOP\r\n") == []
    assert session.resolve(None) == [Send(b"220 hi\r\n250 2.0.0 OK\r\n")]


def test_ehlo_lists_capabilities_in_order(client: Factory) -> None:
    c = client()
    assert c.ehlo() == [
        Reply(
            250,
            None,
            "\n".join(
                [
                    HELLO,
                    "PIPELINING",
                    "SIZE 37748736",
                    "8BITMIME",
                    "SMTPUTF8",
                    "ENHANCEDSTATUSCODES",
                    "DSN",
                    "BINARYMIME",
                    "CHUNKING",
                ]
            ),
        )
    ]
    decision = c.policy.last(DecideHelo)
    assert decision.name == "client.example.org"


def test_ehlo_offers_starttls_and_auth_when_they_apply(client: Factory) -> None:
    [reply] = client(tls_available=True).ehlo()
    assert reply.text.split("\n")[-1] == "STARTTLS"  # AUTH waits for TLS by default
    [reply] = client(tls_available=True, tls_active=True).ehlo()
    assert "STARTTLS" not in reply.text and reply.text.endswith("\nAUTH PLAIN LOGIN")
    [reply] = client(auth_requires_tls=False).ehlo()
    assert reply.text.endswith("\nAUTH PLAIN LOGIN")


def test_ehlo_without_optional_extensions(client: Factory) -> None:
    c = client(max_message_size=0, pipelining=False, smtputf8=False, dsn=False, chunking=False)
    assert c.ehlo() == [Reply(250, None, f"{HELLO}\nSIZE\n8BITMIME\nENHANCEDSTATUSCODES")]


def test_helo_has_no_capabilities(client: Factory) -> None:
    c = client()
    assert c.send(b"HELO client\r\n") == [Reply(250, None, HELLO)]
    assert c.send(b"MAIL FROM:<a@b.example>\r\n") == [SENDER_OK]
    assert c.policy.last(DecideHelo).info.esmtp is False


@pytest.mark.parametrize(
    "line", [b"EHLO\r\n", b"EHLO \r\n", b"EHLO two words\r\n", b"HELO " + b"a" * 256 + b"\r\n"]
)
def test_ehlo_needs_one_name(client: Factory, line: bytes) -> None:
    c = client()
    assert c.send(line) == [BAD_ARGUMENTS]
    assert c.send(b"MAIL FROM:<a@b.example>\r\n") == [NEED_HELO]


def test_ehlo_refused_by_policy_is_not_remembered(client: Factory) -> None:
    refusal = Reply(550, "5.7.1", "Not you")
    c = client(FakePolicy(helo=refusal))
    assert c.ehlo() == [refusal]
    assert c.send(b"MAIL FROM:<a@b.example>\r\n") == [NEED_HELO]


def test_policy_text_replaces_the_hello_line(client: Factory) -> None:
    c = client(FakePolicy(helo=Reply(250, None, "Hi friend")))
    [reply] = c.ehlo()
    assert reply.text.startswith("Hi friend\nPIPELINING\n")


def test_ehlo_resets_the_transaction(ready: Client) -> None:
    ready.send(b"MAIL FROM:<a@b.example>\r\n")
    ready.ehlo()
    assert ready.send(b"MAIL FROM:<a@b.example>\r\n") == [SENDER_OK]


def test_simple_commands(ready: Client) -> None:
    assert ready.send(b"NOOP\r\n") == [OK]
    assert ready.send(b"noop whatever\r\n") == [OK]
    assert ready.send(b"HELP\r\n") == [HELP]
    assert ready.send(b"VRFY alice\r\n") == [CANNOT_VRFY]
    assert ready.send(b"VRFY\r\n") == [BAD_ARGUMENTS]
    assert ready.send(b"EXPN staff\r\n") == [NOT_IMPLEMENTED]
    assert ready.send(b"XYZZY\r\n") == [UNKNOWN_COMMAND]
    assert ready.send(b"QUIT\r\n") == [CLOSING]
    assert ready.closed
    assert ready.send(b"NOOP\r\n") == []


@pytest.mark.parametrize(
    "line",
    [b"\x00\x01\x02\r\n", b"NO\xffOP\r\n", b"MAIL\tFROM:<a@b>\r\n", b"\r\n", b" NOOP\r\n", b"12 3\r\n"],
)
def test_garbage_is_a_syntax_error(ready: Client, line: bytes) -> None:
    assert ready.send(line) == [SYNTAX_ERROR]


def test_bare_lf_ends_a_command_line(ready: Client) -> None:
    assert ready.send(b"NOOP\nNOOP\r\n") == [OK, OK]


def test_eof_closes(ready: Client) -> None:
    assert ready.eof() == []
    assert ready.closed


def test_resolve_without_a_pending_decision_is_a_programming_error() -> None:
    session = SmtpSession(SessionSettings("mx.example.com"), peer=("192.0.2.1", 1))
    session.start()
    session.resolve(None)
    with pytest.raises(RuntimeError):
        session.resolve(None)


def test_trace_shows_commands_and_masks_credentials(client: Factory) -> None:
    c = client(trace=True, tls_active=True)
    c.ehlo()
    c.send(b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nNOOP\r\n")
    assert c.traces == ["EHLO client.example.org", "AUTH PLAIN ****", "NOOP"]
