"""TRANSACTION and UPDATE state transcripts: STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, QUIT."""

from __future__ import annotations

import pytest

from courriel.proto.pop3 import DecideCommit, DecideRetrieve, DropEntry, Pop3Settings, Pop3State
from tests.unit.proto.pop3.pop3_harness import OPEN, FakeStore, Harness, login, run


@pytest.fixture
def h() -> Harness:
    harness = Harness(OPEN)
    login(harness)
    return harness


def test_stat_list_uidl(h: Harness) -> None:
    run(
        h,
        """
        C: STAT
        S: +OK 3 123
        C: LIST
        S: +OK 3 messages (123 octets)
        S: 1 45
        S: 2 57
        S: 3 21
        S: .
        C: LIST 2
        S: +OK 2 57
        C: UIDL
        S: +OK Unique-ID listing follows
        S: 1 uid-1
        S: 2 uid-2
        S: 3 uid-3
        S: .
        C: uidl 3
        S: +OK 3 uid-3
        C: NOOP
        S: +OK
        """,
    )


def test_dele_marks_and_rset_unmarks(h: Harness) -> None:
    run(
        h,
        """
        C: DELE 2
        S: +OK Message 2 deleted
        C: DELE 2
        S: -ERR Message 2 already deleted
        C: STAT
        S: +OK 2 66
        C: LIST
        S: +OK 2 messages (66 octets)
        S: 1 45
        S: 3 21
        S: .
        C: LIST 2
        S: -ERR Message 2 already deleted
        C: UIDL 2
        S: -ERR Message 2 already deleted
        C: RETR 2
        S: -ERR Message 2 already deleted
        C: TOP 2 0
        S: -ERR Message 2 already deleted
        C: UIDL 3
        S: +OK 3 uid-3
        C: RSET
        S: +OK Maildrop has 3 messages (123 octets)
        C: LIST 2
        S: +OK 2 57
        """,
    )


def test_bad_message_numbers() -> None:
    h = Harness(Pop3Settings(login_allowed_without_tls=True, max_errors=100))
    login(h)
    run(
        h,
        """
        C: LIST 0
        S: -ERR No such message
        C: LIST 4
        S: -ERR No such message
        C: RETR 99999999999
        S: -ERR Invalid message number
        C: DELE -1
        S: -ERR Invalid message number
        C: DELE +1
        S: -ERR Invalid message number
        C: RETR one
        S: -ERR Invalid message number
        C: RETR
        S: -ERR Invalid message number
        C: RETR 1 2
        S: -ERR Invalid message number
        C: LIST 1 2
        S: -ERR Invalid message number
        C: LIST ١
        S: -ERR Invalid message number
        C: TOP
        S: -ERR Invalid message number
        C: TOP 1
        S: -ERR Invalid line count
        C: TOP 1 x
        S: -ERR Invalid line count
        C: TOP x 1
        S: -ERR Invalid message number
        C: STAT 1
        S: -ERR This command takes no arguments
        C: NOOP x
        S: -ERR This command takes no arguments
        C: RSET x
        S: -ERR This command takes no arguments
        C: LIST  2
        S: +OK 2 57
        """,
    )


def test_retr_normalizes_line_endings_and_byte_stuffs(h: Harness) -> None:
    run(
        h,
        """
        C: RETR 2
        S: +OK 57 octets
        S: Subject: two
        S:
        S: line 1
        S: ..hidden dot
        S: ...two dots
        S: line 4
        S: .
        C: RETR 3
        S: +OK 21 octets
        S: Subject: three
        S:
        S: ..
        S: .
        """,
    )
    assert h.decisions[-2:] == [DecideRetrieve("uid-2"), DecideRetrieve("uid-3")]


def test_top(h: Harness) -> None:
    run(
        h,
        """
        C: TOP 2 0
        S: +OK
        S: Subject: two
        S:
        S: .
        C: TOP 2 2
        S: +OK
        S: Subject: two
        S:
        S: line 1
        S: ..hidden dot
        S: .
        C: TOP 2 1000
        S: +OK
        S: Subject: two
        S:
        S: line 1
        S: ..hidden dot
        S: ...two dots
        S: line 4
        S: .
        """,
    )


@pytest.mark.parametrize(
    ("message", "lines", "expected"),
    [
        (b"Subject: no body", 5, b"Subject: no body\r\n.\r\n"),
        (b"Subject: no body\r\n", 0, b"Subject: no body\r\n.\r\n"),
        (b"\r\nbody only\r\n.\r\n", 1, b"\r\nbody only\r\n.\r\n"),
        (b"\r\n.\r\nrest\r\n", 1, b"\r\n..\r\n.\r\n"),
        (b"", 3, b".\r\n"),
        (b".Header: odd\n\n.\nx\n", 1, b"..Header: odd\r\n\r\n..\r\n.\r\n"),
    ],
)
def test_top_edge_cases(message: bytes, lines: int, expected: bytes) -> None:
    h = Harness(OPEN, FakeStore(messages={"m": message}))
    login(h)
    assert h.send(f"TOP 1 {lines}").encode() == b"+OK\r\n" + expected


def test_message_gone_from_the_store(h: Harness) -> None:
    del h.store.messages["uid-1"]
    assert h.send("RETR 1") == "-ERR Message is no longer available\r\n"
    assert h.send("NOOP") == "+OK\r\n"


def test_quit_commits_deletions(h: Harness) -> None:
    run(
        h,
        """
        C: DELE 3
        S: +OK Message 3 deleted
        C: DELE 1
        S: +OK Message 1 deleted
        C: QUIT
        S: +OK Bye
        ** closed
        """,
    )
    assert h.decisions[-1] == DecideCommit(["uid-1", "uid-3"])
    assert h.store.committed == [["uid-1", "uid-3"]]
    assert h.session.state is Pop3State.CLOSED


def test_quit_without_deletions_still_commits(h: Harness) -> None:
    h.send("QUIT")
    assert h.store.committed == [[]]


def test_commit_failure_is_reported_and_closes(h: Harness) -> None:
    h.store.commit_error = "Some deleted messages were not removed"
    h.send("DELE 1")
    assert h.send("QUIT") == "-ERR [SYS/TEMP] Some deleted messages were not removed\r\n"
    assert h.closed


def test_rset_then_quit_removes_nothing(h: Harness) -> None:
    h.send("DELE 1")
    h.send("RSET")
    h.send("QUIT")
    assert h.store.committed == [[]]


def test_eof_without_quit_commits_nothing(h: Harness) -> None:
    h.send("DELE 1")
    assert h.session.eof() != []
    assert h.store.committed == []
    assert h.session.state is Pop3State.CLOSED


def test_authorization_commands_are_refused_after_login(h: Harness) -> None:
    run(
        h,
        """
        C: USER bob
        S: -ERR Command not valid in this state
        C: PASS x
        S: -ERR Command not valid in this state
        C: AUTH PLAIN
        S: -ERR Command not valid in this state
        C: STLS
        S: -ERR Command not valid in this state
        C: LAST
        S: -ERR Unknown command
        C: CAPA
        S: +OK Capability list follows
        S: TOP
        S: UIDL
        S: RESP-CODES
        S: AUTH-RESP-CODE
        S: PIPELINING
        S: IMPLEMENTATION Courriel
        S: .
        """,
    )


def test_empty_maildrop() -> None:
    h = Harness(OPEN, FakeStore(messages={}))
    h.start()
    h.send("USER alice")
    run(
        h,
        """
        C: PASS secret
        S: +OK Logged in, 0 messages (0 octets)
        C: STAT
        S: +OK 0 0
        C: LIST
        S: +OK 0 messages (0 octets)
        S: .
        C: RETR 1
        S: -ERR No such message
        """,
    )


def test_drop_entry_enforces_uidl_rules() -> None:
    DropEntry("a" * 70, 0)
    for uid in ["", "a" * 71, "has space", "é"]:
        with pytest.raises(ValueError):
            DropEntry(uid, 1)
    with pytest.raises(ValueError):
        DropEntry("ok", -1)
