"""Framing, limits, pipelining and robustness of Pop3Session: no input makes it raise."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from courriel.proto.pop3 import (
    Close,
    DecideCommit,
    DecideLogin,
    DecideRetrieve,
    LoginResult,
    Pop3Session,
    Pop3Settings,
    Pop3State,
    Send,
)
from courriel.proto.pop3.wire import LineBuffer, LineTooLong
from tests.unit.proto.pop3.pop3_harness import MESSAGES, OPEN, Harness, login, run

SMALL = Pop3Settings(login_allowed_without_tls=True, max_line=64, max_errors=3)


def test_bare_lf_and_case_insensitive_verbs() -> None:
    h = Harness(OPEN)
    h.start()
    assert h.feed(b"user alice\npAsS secret\n").startswith("+OK Send PASS\r\n+OK Logged in")


def test_bad_lines_get_errors_and_the_session_goes_on() -> None:
    h = Harness(Pop3Settings(login_allowed_without_tls=True, max_line=64))
    h.start()
    assert h.feed(b"USER " + b"x" * 70 + b"\r\n") == "-ERR Line too long\r\n"
    assert h.feed(b"USER \xff\xfe\r\n") == "-ERR Command is not valid UTF-8\r\n"
    assert h.feed(b"USER a\x00b\r\n") == "-ERR Command contains control characters\r\n"
    assert h.feed(b"\r\n") == "-ERR Unknown command\r\n"
    assert h.feed(b"XYZZY\r\n") == "-ERR Unknown command\r\n"
    assert h.feed(b"CAPA extra\r\n") == "-ERR This command takes no arguments\r\n"
    assert h.feed(b"USER alice\r\n") == "+OK Send PASS\r\n"
    assert not h.closed


def test_exactly_max_line_is_accepted() -> None:
    h = Harness(Pop3Settings(login_allowed_without_tls=True, max_line=64))
    h.start()
    line = b"USER " + b"a" * (64 - 7) + b"\r\n"
    assert len(line) == 64
    assert h.feed(line) == "+OK Send PASS\r\n"
    assert h.feed(b"USER " + b"a" * (64 - 6) + b"\r\n") == "-ERR Line too long\r\n"


def test_endless_line_is_discarded_as_it_arrives() -> None:
    buffer = LineBuffer(64)
    for _ in range(1000):
        buffer.feed(b"x" * 1000)
        assert buffer.next_line() is None
        assert len(buffer) <= 1000
    buffer.feed(b"tail\r\nNOOP\r\n")
    with pytest.raises(LineTooLong):
        buffer.next_line()
    assert buffer.next_line() == b"NOOP"
    assert buffer.next_line() is None


def test_too_many_errors_close_the_connection() -> None:
    run(
        Harness(SMALL),
        """
        S: +OK Courriel POP3 service is ready.
        C: FOO
        S: -ERR Unknown command
        C: STAT
        S: -ERR Command not valid in this state
        C: BAR
        S: -ERR Too many errors, closing connection
        ** closed
        """,
    )


def test_missing_messages_do_not_count_as_errors() -> None:
    h = Harness(SMALL)
    login(h)
    for _ in range(5):
        assert h.send("RETR 9") == "-ERR No such message\r\n"
    assert not h.closed


def test_pipelined_commands_wait_for_each_decision() -> None:
    h = Harness(OPEN, auto=False)
    h.start()
    session = h.session
    actions = session.feed(b"USER alice\r\nPASS secret\r\nSTAT\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n")
    assert actions == [Send(b"+OK Send PASS\r\n"), DecideLogin("alice", "secret", "USER")]
    assert session.feed(b"NOOP\r\n") == []  # buffered behind the pending decision
    actions = session.resolve(LoginResult(ok=True, maildrop=h.store.drop()))
    assert actions == [
        Send(b"+OK Logged in, 3 messages (123 octets)\r\n"),
        Send(b"+OK 3 123\r\n"),
        DecideRetrieve("uid-1"),
    ]
    actions = session.resolve(MESSAGES["uid-1"])
    assert actions[0] == Send(b"+OK 45 octets\r\n" + MESSAGES["uid-1"] + b".\r\n")
    assert actions[1:] == [Send(b"+OK Message 1 deleted\r\n"), DecideCommit(["uid-1"])]
    assert session.state is Pop3State.UPDATE
    assert session.feed(b"NOOP\r\n") == []
    assert session.resolve(None) == [Send(b"+OK Bye\r\n"), Close()]
    assert session.feed(b"NOOP\r\n") == []
    assert session.eof() == []


def test_flood_while_a_decision_is_pending_closes() -> None:
    session = Pop3Session(Pop3Settings(login_allowed_without_tls=True, max_line=64, max_pipelined=256))
    session.start()
    assert isinstance(session.feed(b"USER a\r\nPASS b\r\n")[-1], DecideLogin)
    assert session.feed(b"NOOP\r\n" * 30) == []
    assert session.feed(b"NOOP\r\n" * 30) == [Close()]
    assert session.resolve(LoginResult(ok=False)) == []


def test_eof_while_a_decision_is_pending_answers_then_closes() -> None:
    session = Pop3Session(OPEN)
    session.start()
    session.feed(b"USER alice\r\nPASS secret\r\nSTAT\r\n")
    assert session.eof() == []
    drop = Harness().store.drop()
    assert session.resolve(LoginResult(ok=True, maildrop=drop)) == [
        Send(b"+OK Logged in, 3 messages (123 octets)\r\n"),
        Send(b"+OK 3 123\r\n"),
        Close(),
    ]


def test_eof_during_authorization() -> None:
    session = Pop3Session(OPEN)
    session.start()
    session.feed(b"USER ali")
    assert session.eof() == [Close()]
    assert session.state is Pop3State.CLOSED
    assert session.eof() == []


def test_driver_mistakes_raise() -> None:
    session = Pop3Session(OPEN)
    session.start()
    with pytest.raises(RuntimeError):
        session.resolve(None)
    with pytest.raises(RuntimeError):
        session.tls_started()
    session.feed(b"USER alice\r\nPASS secret\r\n")
    with pytest.raises(TypeError):
        session.resolve(b"not a login result")
    assert isinstance(session.pending, DecideLogin)  # still waiting for a proper answer


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        Pop3Settings(max_line=10)
    with pytest.raises(ValueError):
        Pop3Settings(max_line=1024, max_pipelined=512)


SCRIPT = (
    b"CAPA\r\nUSER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL 2\r\nTOP 2 1\r\n"
    b"RETR 3\r\nDELE 1\r\nRSET\r\nDELE 2\r\nNOOP\r\nQUIT\r\n"
)


def transcript_in_chunks(cuts: list[int]) -> tuple[str, bool]:
    h = Harness(OPEN)
    out = h.start()
    start = 0
    for cut in [*sorted(cuts), len(SCRIPT)]:
        out += h.feed(SCRIPT[start:cut])
        start = cut
    return out, h.closed


REFERENCE = transcript_in_chunks([])


@given(st.lists(st.integers(min_value=0, max_value=len(SCRIPT)), max_size=20))
def test_output_does_not_depend_on_chunking(cuts: list[int]) -> None:
    assert transcript_in_chunks(cuts) == REFERENCE
    assert REFERENCE[1] and REFERENCE[0].endswith("+OK Bye\r\n")


VERBS = [
    "USER",
    "PASS",
    "AUTH",
    "STLS",
    "CAPA",
    "STAT",
    "LIST",
    "UIDL",
    "RETR",
    "TOP",
    "DELE",
    "RSET",
    "NOOP",
]
command = st.one_of(
    st.binary(max_size=80),
    st.builds(
        lambda verb, arg: verb.encode() + b" " + arg,
        st.sampled_from(VERBS),
        st.one_of(st.binary(max_size=30), st.from_regex(rb"\A[0-9 =*A-Za-z+/-]{0,12}\Z")),
    ),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(command, max_size=25), st.booleans(), st.booleans())
def test_random_input_never_raises(commands: list[bytes], logged_in: bool, secure: bool) -> None:
    h = Harness(Pop3Settings(tls_available=True, login_allowed_without_tls=not secure, max_line=64))
    if logged_in and not secure:
        login(h)
    else:
        h.start()
    for raw in commands:
        if h.closed:
            break
        out = h.feed(raw + b"\r\n")
        assert out == "" or (out.endswith("\r\n") and out.startswith(("+OK", "-ERR ", "+ \r\n")))
    h.feed(b"QUIT\r\n")
    h.session.eof()
    assert h.session.state is Pop3State.CLOSED
