"""AUTHORIZATION state transcripts: greeting, CAPA, USER/PASS, AUTH PLAIN, STLS, QUIT."""

from __future__ import annotations

import base64

import pytest

from courriel.proto.pop3 import DecideLogin, LoginResult, Pop3Settings, Pop3State, Send, StartTLS
from tests.unit.proto.pop3.pop3_harness import OPEN, SECURE, FakeStore, Harness, run

BAD_UTF8 = base64.b64encode(b"\0alice\0\xff").decode()


def plain(authzid: str, authcid: str, password: str) -> str:
    return base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()


def test_greeting_and_capa_before_tls_when_plaintext_login_is_allowed() -> None:
    run(
        Harness(OPEN),
        """
        S: +OK Courriel POP3 service is ready.
        C: CAPA
        S: +OK Capability list follows
        S: TOP
        S: UIDL
        S: USER
        S: SASL PLAIN
        S: STLS
        S: RESP-CODES
        S: AUTH-RESP-CODE
        S: PIPELINING
        S: IMPLEMENTATION Courriel
        S: .
        """,
    )


def test_secure_login_hides_user_and_sasl_until_tls() -> None:
    h = Harness(SECURE)
    run(
        h,
        """
        S: +OK Courriel POP3 service is ready.
        C: capa
        S: +OK Capability list follows
        S: TOP
        S: UIDL
        S: STLS
        S: RESP-CODES
        S: AUTH-RESP-CODE
        S: PIPELINING
        S: IMPLEMENTATION Courriel
        S: .
        C: USER alice
        S: -ERR [AUTH] Plaintext login is disabled; use STLS first
        C: PASS secret
        S: -ERR [AUTH] Plaintext login is disabled; use STLS first
        C: AUTH PLAIN
        S: -ERR [AUTH] Plaintext login is disabled; use STLS first
        C: AUTH
        S: +OK Supported mechanisms follow
        S: .
        C: STLS
        S: +OK Begin TLS negotiation
        C: CAPA
        S: +OK Capability list follows
        S: TOP
        S: UIDL
        S: USER
        S: SASL PLAIN
        S: RESP-CODES
        S: AUTH-RESP-CODE
        S: PIPELINING
        S: IMPLEMENTATION Courriel
        S: .
        C: STLS
        S: -ERR Command not permitted when TLS active
        C: USER alice
        S: +OK Send PASS
        C: PASS secret
        S: +OK Logged in, 3 messages (123 octets)
        """,
    )
    assert h.tls_starts == 1
    assert h.session.tls_active
    assert h.session.state is Pop3State.TRANSACTION
    assert h.session.username == "alice"


def test_implicit_tls_listener_allows_login_and_offers_no_stls() -> None:
    h = Harness(Pop3Settings(tls_available=True, tls_active=True))
    h.start()
    capa = h.send("CAPA")
    assert "USER\r\n" in capa and "STLS" not in capa
    assert h.send("STLS") == "-ERR Command not permitted when TLS active\r\n"


def test_stls_unavailable() -> None:
    h = Harness(Pop3Settings(login_allowed_without_tls=True))
    h.start()
    assert "STLS" not in h.send("CAPA")
    assert h.send("STLS") == "-ERR STLS is not available\r\n"
    assert h.tls_starts == 0


def test_stls_discards_pipelined_plaintext() -> None:
    # RFC 2595 §4: a USER/PASS injected behind STLS must not run after the handshake.
    h = Harness(SECURE)
    h.start()
    out = h.feed(b"STLS\r\nUSER alice\r\nPASS secret\r\n")
    assert out == "+OK Begin TLS negotiation\r\n"
    assert h.decisions == []
    assert h.session.state is Pop3State.AUTHORIZATION


def test_pending_user_is_forgotten_across_stls() -> None:
    h = Harness(OPEN)
    run(
        h,
        """
        S: +OK Courriel POP3 service is ready.
        C: USER alice
        S: +OK Send PASS
        C: STLS
        S: +OK Begin TLS negotiation
        C: PASS secret
        S: -ERR Send USER first
        """,
    )


def test_input_while_tls_handshake_is_pending_is_ignored() -> None:
    h = Harness(OPEN, auto=False)
    h.start()
    actions = h.session.feed(b"STLS\r\n")
    assert actions == [Send(b"+OK Begin TLS negotiation\r\n"), StartTLS()]
    assert h.session.feed(b"\x16\x03\x01 client hello\r\n") == []
    assert h.session.tls_started() == []
    assert h.session.feed(b"NOOP\r\n") == [Send(b"-ERR Command not valid in this state\r\n")]


def test_user_pass_failure_then_success() -> None:
    h = Harness(OPEN)
    run(
        h,
        """
        S: +OK Courriel POP3 service is ready.
        C: PASS secret
        S: -ERR Send USER first
        C: USER
        S: -ERR USER requires a user name
        C: USER alice
        S: +OK Send PASS
        C: PASS
        S: -ERR PASS requires a password
        C: PASS wrong
        S: -ERR [AUTH] Authentication failed
        C: PASS secret
        S: -ERR Send USER first
        C: USER alice
        S: +OK Send PASS
        C: PASS secret
        S: +OK Logged in, 3 messages (123 octets)
        """,
    )
    assert [d.password for d in h.decisions if isinstance(d, DecideLogin)] == ["wrong", "secret"]
    assert all(d.mechanism == "USER" for d in h.decisions if isinstance(d, DecideLogin))


def test_unknown_user_gets_the_same_answers() -> None:
    run(
        Harness(OPEN),
        """
        S: +OK Courriel POP3 service is ready.
        C: USER nobody
        S: +OK Send PASS
        C: PASS secret
        S: -ERR [AUTH] Authentication failed
        """,
    )


def test_password_keeps_its_spaces() -> None:
    store = FakeStore(users={"bob": " two words "})
    h = Harness(OPEN, store)
    h.start()
    h.send("USER bob")
    assert h.send("PASS  two words ").startswith("+OK Logged in")


def test_too_many_failed_logins_close_the_connection() -> None:
    run(
        Harness(OPEN),
        """
        S: +OK Courriel POP3 service is ready.
        C: USER alice
        S: +OK Send PASS
        C: PASS a
        S: -ERR [AUTH] Authentication failed
        C: USER alice
        S: +OK Send PASS
        C: PASS b
        S: -ERR [AUTH] Authentication failed
        C: AUTH PLAIN {}
        S: -ERR [AUTH] Authentication failed
        ** closed
        """.format(plain("", "alice", "c")),
    )


def test_maildrop_in_use_and_system_errors() -> None:
    store = FakeStore(locked={"alice"})
    h = Harness(OPEN, store)
    run(
        h,
        """
        S: +OK Courriel POP3 service is ready.
        C: USER alice
        S: +OK Send PASS
        C: PASS secret
        S: -ERR [IN-USE] Maildrop is locked by another session
        """,
    )
    store.locked.clear()
    store.login_error = "Directory unavailable,\r\n try later"
    h.send("USER alice")
    assert h.send("PASS secret") == "-ERR [SYS/TEMP] Directory unavailable, try later\r\n"
    store.login_error = None
    h.send("USER alice")
    assert h.send("PASS secret").startswith("+OK")  # neither counted as a failed login


def test_auth_plain_with_initial_response() -> None:
    h = Harness(OPEN)
    run(
        h,
        f"""
        S: +OK Courriel POP3 service is ready.
        C: AUTH plain {plain("", "alice", "secret")}
        S: +OK Logged in, 3 messages (123 octets)
        """,
    )
    assert h.decisions == [DecideLogin("alice", "secret", "PLAIN")]


def test_auth_plain_with_continuation_and_matching_authzid() -> None:
    h = Harness(OPEN)
    h.start()
    assert h.send("AUTH PLAIN") == "+ \r\n"
    assert h.send(plain("alice", "alice", "secret")).startswith("+OK Logged in")


def test_auth_plain_cancel_and_errors() -> None:
    run(
        Harness(OPEN),
        f"""
        S: +OK Courriel POP3 service is ready.
        C: AUTH PLAIN
        S: +
        C: *
        S: -ERR Authentication cancelled
        C: AUTH PLAIN
        S: +
        C: not base64!
        S: -ERR Invalid base64 in SASL response
        C: AUTH PLAIN =
        S: -ERR Malformed PLAIN response
        C: AUTH PLAIN {base64.b64encode(b"alice").decode()}
        S: -ERR Malformed PLAIN response
        C: AUTH PLAIN {plain("", "alice", "")}
        S: -ERR Malformed PLAIN response
        C: AUTH PLAIN {BAD_UTF8}
        S: -ERR PLAIN response is not valid UTF-8
        C: AUTH PLAIN {plain("admin", "alice", "secret")}
        S: -ERR [AUTH] Authorization identity not permitted
        C: AUTH CRAM-MD5
        S: -ERR Unsupported authentication mechanism
        C: AUTH
        S: +OK Supported mechanisms follow
        S: PLAIN
        S: .
        C: AUTH PLAIN {plain("", "alice", "secret")}
        S: +OK Logged in, 3 messages (123 octets)
        """,
    )


def test_sasl_response_line_is_not_a_command() -> None:
    h = Harness(OPEN)
    h.start()
    h.send("AUTH PLAIN")
    assert h.send("QUIT") == "-ERR Malformed PLAIN response\r\n"  # "QUIT" is valid base64
    assert not h.closed


def test_login_decision_hides_the_password_in_repr() -> None:
    assert "secret" not in repr(DecideLogin("alice", "secret", "USER"))


def test_transaction_commands_and_junk_before_login() -> None:
    run(
        Harness(OPEN),
        """
        S: +OK Courriel POP3 service is ready.
        C: STAT
        S: -ERR Command not valid in this state
        C: RETR 1
        S: -ERR Command not valid in this state
        C: APOP alice 0123456789abcdef
        S: -ERR Unknown command
        C: QUIT
        S: +OK Bye
        ** closed
        """,
    )


def test_successful_login_needs_a_maildrop() -> None:
    with pytest.raises(ValueError):
        LoginResult(ok=True)
