"""STARTTLS (RFC 3207) and connectors that require TLS."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from courriel.core.replies import (
    BAD_ARGUMENTS,
    ENCRYPTION_REQUIRED,
    NEED_HELO,
    NEED_MAIL,
    NOT_IMPLEMENTED,
    OK,
    READY_FOR_TLS,
    SENDER_OK,
    TLS_ALREADY_ACTIVE,
)
from courriel.proto.smtp import DecideMail, SessionSettings, SmtpSession

from .conftest import Client

Factory = Callable[..., Client]


@pytest.fixture
def tls_client(client: Factory) -> Client:
    c = client(tls_available=True)
    c.ehlo()
    return c


def test_starttls_not_available(ready: Client) -> None:
    assert ready.send(b"STARTTLS\r\n") == [NOT_IMPLEMENTED]


def test_starttls_upgrade_forgets_the_session(tls_client: Client) -> None:
    c = tls_client
    c.send(b"MAIL FROM:<a@b.example>\r\n")
    assert c.send(b"STARTTLS\r\n") == [READY_FOR_TLS]
    assert c.tls_requested
    assert c.complete_tls() == []
    # RFC 3207 §4.2: the EHLO name and the transaction are gone.
    assert c.send(b"MAIL FROM:<a@b.example>\r\n") == [NEED_HELO]
    [reply] = c.ehlo()
    assert "STARTTLS" not in reply.text and reply.text.endswith("AUTH PLAIN LOGIN")
    assert c.send(b"RCPT TO:<c@d.example>\r\n") == [NEED_MAIL]
    c.send(b"MAIL FROM:<a@b.example>\r\n")
    assert c.policy.last(DecideMail).info.tls_active


def test_plaintext_pipelined_after_starttls_is_discarded(tls_client: Client) -> None:
    # CVE-2011-0411: commands injected after STARTTLS must not run inside the TLS session.
    c = tls_client
    assert c.send(b"STARTTLS\r\nMAIL FROM:<evil@b.example>\r\n") == [READY_FOR_TLS]
    assert c.send(b"RCPT TO:<evil@d.example>\r\n") == []
    c.complete_tls()
    assert c.send(b"NOOP\r\n") == [OK]
    assert not any(isinstance(d, DecideMail) for d in c.policy.seen)


def test_starttls_refusals(client: Factory) -> None:
    c = client(tls_available=True)
    c.ehlo()
    assert c.send(b"STARTTLS now\r\n") == [BAD_ARGUMENTS]
    c.send(b"STARTTLS\r\n")
    c.complete_tls()
    assert c.send(b"STARTTLS\r\n") == [TLS_ALREADY_ACTIVE]


def test_require_tls(client: Factory) -> None:
    c = client(tls_available=True, require_tls=True)
    c.ehlo()
    for line in (b"MAIL FROM:<a@b.example>", b"VRFY x", b"HELP", b"AUTH PLAIN AGEAYg=="):
        assert c.send(line + b"\r\n") == [ENCRYPTION_REQUIRED]
    c2 = client(tls_available=True, require_tls=True, max_protocol_errors=0)
    for line in (b"NOOP", b"RSET", b"HELO x", b"EHLO x"):
        assert c2.send(line + b"\r\n")[0].code == 250
    assert c2.send(b"STARTTLS\r\n") == [READY_FOR_TLS]
    c2.complete_tls()
    c2.ehlo()
    assert c2.send(b"MAIL FROM:<a@b.example>\r\n") == [SENDER_OK]


def test_tls_started_without_request_is_a_programming_error() -> None:
    session = SmtpSession(SessionSettings("mx.example.com"), peer=("192.0.2.1", 1))
    session.start()
    with pytest.raises(RuntimeError):
        session.tls_started()


def test_implicit_tls_session_is_already_secure(client: Factory) -> None:
    c = client(tls_available=True, tls_active=True)
    [reply] = c.ehlo()
    assert "STARTTLS" not in reply.text
    assert c.send(b"STARTTLS\r\n") == [TLS_ALREADY_ACTIVE]
