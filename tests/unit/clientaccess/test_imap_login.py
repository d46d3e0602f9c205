"""The front end's IMAP4 conversation before login (sans-I/O): transcripts and a fuzz pass."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from courriel.clientaccess.imap_login import (
    AUTH_FAILED,
    Action,
    Close,
    DecideLogin,
    ImapLoginSession,
    ImapLoginSettings,
    Refusal,
    Send,
    StartTLS,
)

FAILED = Refusal("AUTHENTICATIONFAILED", AUTH_FAILED)


def wire(actions: list[Action]) -> str:
    return b"".join(a.data for a in actions if isinstance(a, Send)).decode()


def session(**overrides: object) -> ImapLoginSession:
    values: dict[str, object] = {"tls_available": True}
    values.update(overrides)
    s = ImapLoginSession(ImapLoginSettings(**values))  # type: ignore[arg-type]
    s.start()
    return s


def plain(authzid: str, user: str, password: str) -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def test_greeting_and_capabilities_follow_tls_and_login_type() -> None:
    plain_port = ImapLoginSession(ImapLoginSettings(tls_available=True))
    assert wire(plain_port.start()) == (
        "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID STARTTLS LOGINDISABLED] Courriel IMAP4 service is ready.\r\n"
    )
    tls_port = ImapLoginSession(ImapLoginSettings(tls_available=True, tls_active=True, banner="Hi"))
    assert wire(tls_port.start()) == "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN] Hi\r\n"
    lenient = session(login_allowed_without_tls=True)
    assert "STARTTLS AUTH=PLAIN" in wire(lenient.feed(b"a CAPABILITY\r\n"))


def test_any_state_commands() -> None:
    s = session()
    assert wire(s.feed(b"a1 NOOP\r\n")) == "a1 OK NOOP completed\r\n"
    assert wire(s.feed(b'a2 ID ("name" "mutt")\r\n')) == '* ID ("name" "Courriel")\r\na2 OK ID completed\r\n'
    assert wire(s.feed(b"a3 SELECT INBOX\r\n")) == "a3 BAD Log in first\r\n"
    out = s.feed(b"a4 LOGOUT\r\na5 NOOP\r\n")
    assert wire(out) == "* BYE Logging out\r\na4 OK LOGOUT completed\r\n"
    assert isinstance(out[-1], Close) and s.closed


def test_secure_login_refuses_credentials_until_starttls() -> None:
    s = session()
    assert wire(s.feed(b"a1 LOGIN alice secret\r\n")) == (
        "a1 NO [PRIVACYREQUIRED] Plaintext authentication is disabled, use STARTTLS first\r\n"
    )
    assert "a2 NO [PRIVACYREQUIRED]" in wire(s.feed(b"a2 AUTHENTICATE PLAIN\r\n"))
    out = s.feed(b"a3 STARTTLS\r\na4 LOGIN alice secret\r\n")  # a4 injected in plaintext
    assert wire(out) == "a3 OK Begin TLS negotiation now\r\n" and isinstance(out[-1], StartTLS)
    assert s.feed(b"ignored during the handshake\r\n") == []
    assert s.tls_started() == []  # the injected LOGIN is gone
    caps = wire(s.feed(b"a5 CAPABILITY\r\n"))
    assert "AUTH=PLAIN" in caps and "STARTTLS" not in caps and "LOGINDISABLED" not in caps
    assert wire(s.feed(b"a6 STARTTLS\r\n")) == "a6 BAD TLS is already active\r\n"
    assert (
        wire(session(tls_available=False).feed(b"a7 STARTTLS\r\n")) == "a7 BAD STARTTLS is not available\r\n"
    )


def test_login_with_literals_then_refusals_until_bye() -> None:
    s = session(tls_active=True)
    assert wire(s.feed(b"a1 LOGIN {5}\r\n")) == "+ Ready for literal data\r\n"
    assert s.feed(b'alice "se cret"\r\n') == [DecideLogin("a1", "alice", "se cret")]
    assert s.feed(b"a2 NOOP\r\n") == []  # held while the login is decided
    out = s.refuse(FAILED)
    assert wire(out) == "a1 NO [AUTHENTICATIONFAILED] Authentication failed\r\na2 OK NOOP completed\r\n"
    assert s.feed(b"a3 LOGIN {3+}\r\nbob x\r\n") == [DecideLogin("a3", "bob", "x")]
    s.refuse(Refusal("UNAVAILABLE", "later", counts=False))  # ours: not counted
    s.feed(b"a4 LOGIN bob y\r\na5 LOGIN bob z\r\n")
    assert s.refuse(FAILED) == [
        Send(b"a4 NO [AUTHENTICATIONFAILED] Authentication failed\r\n"),
        DecideLogin("a5", "bob", "z"),
    ]
    assert not s.closed
    out = s.refuse(FAILED)
    assert wire(out).endswith("* BYE Too many failed logins\r\n") and isinstance(out[-1], Close)


def test_authenticate_plain_with_and_without_initial_response() -> None:
    s = session(tls_active=True)
    assert s.feed(f"a1 AUTHENTICATE PLAIN {plain('', 'alice', 'pw')}\r\n".encode()) == [
        DecideLogin("a1", "alice", "pw")
    ]
    s.refuse(FAILED)
    assert wire(s.feed(b"a2 authenticate plain\r\n")) == "+ \r\n"
    assert s.feed(plain("alice", "alice", "pw").encode() + b"\r\n") == [DecideLogin("a2", "alice", "pw")]
    s.refuse(Refusal("UNAVAILABLE", "later", counts=False))
    s.feed(b"a3 AUTHENTICATE PLAIN\r\n")
    assert wire(s.feed(b"*\r\n")) == "a3 BAD Authentication cancelled\r\n"
    s.feed(b"a4 AUTHENTICATE PLAIN\r\n")
    assert wire(s.feed(b"!!!\r\n")) == "a4 BAD Invalid base64 in SASL response\r\n"
    assert wire(s.feed(f"a5 AUTHENTICATE PLAIN {plain('bob', 'alice', 'pw')}\r\n".encode())) == (
        "a5 NO [AUTHORIZATIONFAILED] Authorization identity not permitted\r\n"
    )
    assert (
        wire(s.feed(b"a6 AUTHENTICATE CRAM-MD5\r\n"))
        == "a6 NO [CANNOT] Unsupported authentication mechanism\r\n"
    )
    assert wire(s.feed(b"a7 AUTHENTICATE PLAIN =\r\n")) == "a7 BAD Malformed PLAIN response\r\n"


def test_handover_returns_exactly_what_followed_the_login() -> None:
    s = session(tls_active=True)
    out = s.feed(b"a1 LOGIN alice pw\r\na2 SELECT INBOX\r\na3 FETCH 1 (FLA")
    assert out == [DecideLogin("a1", "alice", "pw")]
    s.feed(b"GS)\r\n")
    assert s.handover() == b"a2 SELECT INBOX\r\na3 FETCH 1 (FLAGS)\r\n"
    assert s.closed and s.feed(b"more") == []


def test_bad_input_gets_bad_and_too_much_of_it_a_bye() -> None:
    s = session(max_errors=3)
    assert wire(s.feed(b"\r\n")) == ""  # empty lines between commands are ignored
    assert wire(s.feed(b"*nope\r\n")) == "* BAD Missing or invalid tag\r\n"
    assert wire(s.feed(b"a1 FROB\r\n")) == "a1 BAD Unknown command\r\n"
    out = s.feed(b"a2 LOGIN\r\n")
    assert wire(out).startswith("a2 BAD ") and wire(out).endswith("* BYE Too many invalid commands\r\n")
    assert isinstance(out[-1], Close)


def test_command_size_is_bounded() -> None:
    s = session(max_command=1024)
    out = wire(s.feed(b"a1 LOGIN " + b"x" * 2000 + b" pw\r\na2 NOOP\r\n"))
    assert out == "a1 BAD [TOOBIG] Command line too long\r\na2 OK NOOP completed\r\n"
    assert wire(s.feed(b"a3 LOGIN {5000}\r\n")).startswith("a3 BAD [TOOBIG]")


def test_eof_closes() -> None:
    s = session()
    assert s.eof() == [Close()] and s.eof() == []


CHUNKS = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"a1 ",
                b"LOGIN ",
                b"AUTHENTICATE PLAIN",
                b"STARTTLS",
                b"{3}\r\n",
                b"{2+}\r\n",
                b'"x"',
                b"*\r\n",
                b"\r\n",
                b"\n",
                b"ID (",
                b")",
                b"NIL",
                b"=",
                b"AGFsaWNlAHB3",
                b"LOGOUT",
                b"CAPABILITY",
            ]
        ),
        st.binary(max_size=40),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(CHUNKS, st.booleans())
def test_no_input_crashes_the_session(chunks: list[bytes], tls: bool) -> None:
    s = session(tls_active=tls, login_allowed_without_tls=not tls)
    for chunk in chunks:
        actions = s.feed(chunk)
        assert all(isinstance(a, Send | StartTLS | Close | DecideLogin) for a in actions)
        if any(isinstance(a, StartTLS) for a in actions):
            s.tls_started()
        if s.pending is not None:
            s.refuse(FAILED)
        if s.closed:
            break
