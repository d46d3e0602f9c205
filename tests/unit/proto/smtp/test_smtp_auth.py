"""AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from courriel.core.replies import (
    ALREADY_AUTHENTICATED,
    AUTH_BAD_RESPONSE,
    AUTH_CANCELLED,
    AUTH_ENCRYPTION_REQUIRED,
    AUTH_FAILED,
    AUTH_IN_TRANSACTION,
    AUTH_MECHANISM_UNKNOWN,
    AUTH_SUCCEEDED,
    BAD_ARGUMENTS,
    NEED_EHLO,
    NOT_IMPLEMENTED,
    OK,
    SENDER_OK,
    TOO_MANY_LOGON_FAILURES,
    Reply,
)
from courriel.proto.smtp import DecideAuth, DecideMail

from .conftest import Client, FakePolicy

Factory = Callable[..., Client]


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


PLAIN_OK = b64(b"\0alice\0secret")
USERNAME = Reply(334, None, "VXNlcm5hbWU6")
PASSWORD = Reply(334, None, "UGFzc3dvcmQ6")


@pytest.fixture
def tls(client: Factory) -> Client:
    c = client(tls_active=True)
    c.ehlo()
    return c


def test_plain_with_initial_response(tls: Client) -> None:
    assert tls.send(b"AUTH PLAIN " + PLAIN_OK + b"\r\n") == [AUTH_SUCCEEDED]
    decision = tls.policy.last(DecideAuth)
    assert (decision.mechanism, decision.authzid, decision.username, decision.password) == (
        "PLAIN",
        None,
        "alice",
        "secret",
    )
    tls.send(b"MAIL FROM:<alice@b.example>\r\n")
    assert tls.policy.last(DecideMail).info.authenticated == "alice"


def test_plain_without_initial_response(tls: Client) -> None:
    assert tls.send(b"auth plain\r\n") == [Reply(334, None, "")]
    assert tls.send(PLAIN_OK + b"\r\n") == [AUTH_SUCCEEDED]


def test_plain_authzid_is_passed_on(tls: Client) -> None:
    assert tls.send(b"AUTH PLAIN " + b64(b"boss\0alice\0secret") + b"\r\n") == [AUTH_SUCCEEDED]
    decision = tls.policy.last(DecideAuth)
    assert (decision.authzid, decision.username) == ("boss", "alice")


def test_login(tls: Client) -> None:
    assert tls.send(b"AUTH LOGIN\r\n") == [USERNAME]
    assert tls.send(b64(b"alice") + b"\r\n") == [PASSWORD]
    assert tls.send(b64(b"secret") + b"\r\n") == [AUTH_SUCCEEDED]
    decision = tls.policy.last(DecideAuth)
    assert (decision.mechanism, decision.username, decision.password) == ("LOGIN", "alice", "secret")


def test_login_with_initial_response(tls: Client) -> None:
    assert tls.send(b"AUTH LOGIN " + b64(b"alice") + b"\r\n") == [PASSWORD]
    assert tls.send(b64(b"secret") + b"\r\n") == [AUTH_SUCCEEDED]


def test_utf8_credentials(tls: Client) -> None:
    tls.policy.users["jöran"] = "pässwörd"
    assert tls.send(b"AUTH PLAIN " + b64("\0jöran\0pässwörd".encode()) + b"\r\n") == [AUTH_SUCCEEDED]


def test_cancel(tls: Client) -> None:
    assert tls.send(b"AUTH LOGIN\r\n*\r\n") == [USERNAME, AUTH_CANCELLED]
    assert tls.send(b"AUTH PLAIN *\r\n") == [AUTH_CANCELLED]
    assert tls.send(b"NOOP\r\n") == [OK]


@pytest.mark.parametrize(
    "response",
    [
        b"not base64!",
        b"QUJD=",
        b"AGFsaWNl",
        b64(b"alice\0secret"),
        b64(b"\0\0secret"),
        b64(b"\0alice\0"),
        b64(b"\0\xff\0x"),
        b"=",
    ],
)
def test_bad_plain_responses(tls: Client, response: bytes) -> None:
    assert tls.send(b"AUTH PLAIN\r\n" + response + b"\r\n") == [Reply(334, None, ""), AUTH_BAD_RESPONSE]


def test_empty_initial_response(tls: Client) -> None:
    # RFC 4954 §4: "=" is an empty initial response, which is not valid PLAIN.
    assert tls.send(b"AUTH PLAIN =\r\n") == [AUTH_BAD_RESPONSE]
    assert tls.send(b"AUTH PLAIN ####\r\n") == [AUTH_BAD_RESPONSE]


def test_wrong_password_then_too_many_failures(tls: Client) -> None:
    bad = b"AUTH PLAIN " + b64(b"\0alice\0guess") + b"\r\n"
    assert tls.send(bad) == [AUTH_FAILED]
    assert tls.send(bad) == [AUTH_FAILED]
    assert tls.send(bad) == [AUTH_FAILED, TOO_MANY_LOGON_FAILURES]
    assert tls.closed


def test_failures_of_any_kind_count(client: Factory) -> None:
    c = client(tls_active=True, max_logon_failures=2)
    c.ehlo()
    assert c.send(b"AUTH LOGIN *\r\n") == [AUTH_CANCELLED]
    assert c.send(b"AUTH PLAIN !!\r\n") == [AUTH_BAD_RESPONSE, TOO_MANY_LOGON_FAILURES]


def test_transient_policy_answer_is_not_a_logon_failure(client: Factory) -> None:
    c = client(tls_active=True, max_logon_failures=1)
    c.ehlo()

    class Down(FakePolicy):
        def answer(self, decision):  # type: ignore[no-untyped-def]
            return (
                Reply(454, "4.7.0", "Temporary authentication failure")
                if isinstance(decision, DecideAuth)
                else super().answer(decision)
            )

    c.policy = Down()
    assert c.send(b"AUTH PLAIN " + PLAIN_OK + b"\r\n") == [
        Reply(454, "4.7.0", "Temporary authentication failure")
    ]
    assert not c.closed


def test_auth_sequence_rules(client: Factory) -> None:
    c = client(tls_active=True, max_protocol_errors=0)
    assert c.send(b"AUTH PLAIN " + PLAIN_OK + b"\r\n") == [NEED_EHLO]
    c.send(b"HELO x\r\n")
    assert c.send(b"AUTH PLAIN " + PLAIN_OK + b"\r\n") == [NEED_EHLO]
    c.ehlo()
    assert c.send(b"AUTH\r\n") == [BAD_ARGUMENTS]
    assert c.send(b"AUTH CRAM-MD5\r\n") == [AUTH_MECHANISM_UNKNOWN]
    assert c.send(b"MAIL FROM:<a@b.example>\r\n") == [SENDER_OK]
    assert c.send(b"AUTH PLAIN " + PLAIN_OK + b"\r\n") == [AUTH_IN_TRANSACTION]  # RFC 4954 §4


def test_auth_twice(tls: Client) -> None:
    tls.send(b"AUTH PLAIN " + PLAIN_OK + b"\r\n")
    assert tls.send(b"AUTH PLAIN " + PLAIN_OK + b"\r\n") == [ALREADY_AUTHENTICATED]


def test_auth_before_tls_is_refused(ready: Client) -> None:
    assert ready.send(b"AUTH PLAIN " + PLAIN_OK + b"\r\n") == [AUTH_ENCRYPTION_REQUIRED]


def test_auth_in_clear_when_allowed(client: Factory) -> None:
    c = client(auth_requires_tls=False)
    c.ehlo()
    assert c.send(b"AUTH PLAIN " + PLAIN_OK + b"\r\n") == [AUTH_SUCCEEDED]


def test_auth_disabled(client: Factory) -> None:
    c = client(auth_mechanisms=(), tls_active=True)
    c.ehlo()
    assert c.send(b"AUTH PLAIN " + PLAIN_OK + b"\r\n") == [NOT_IMPLEMENTED]


def test_only_offered_mechanisms(client: Factory) -> None:
    c = client(auth_mechanisms=("plain",), tls_active=True)
    [reply] = c.ehlo()
    assert reply.text.endswith("\nAUTH PLAIN")
    assert c.send(b"AUTH LOGIN\r\n") == [AUTH_MECHANISM_UNKNOWN]


def test_long_sasl_responses_are_allowed(tls: Client) -> None:
    password = b"p" * 3000
    tls.policy.users["alice"] = password.decode()
    line = b"AUTH PLAIN " + b64(b"\0alice\0" + password) + b"\r\n"
    assert 4000 < len(line) < 12288
    assert tls.send(line) == [AUTH_SUCCEEDED]


def test_sasl_response_too_long(tls: Client) -> None:
    assert tls.send(b"AUTH LOGIN\r\n" + b"A" * 13000 + b"\r\nNOOP\r\n")[1:] == [
        Reply(500, "5.5.2", "Line too long"),
        OK,
    ]
