"""A test driver for Pop3Session: a fake store that answers decisions, and transcripts.

A transcript is a script of "C: " lines (sent by the client) and "S: " lines (expected from
the server, compared without trailing spaces), plus "** closed" where the session must have
asked to close the connection.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

from courriel.proto.pop3 import (
    Action,
    Close,
    DecideCommit,
    DecideLogin,
    DecideRetrieve,
    Decision,
    DropEntry,
    LoginResult,
    Pop3Session,
    Pop3Settings,
    Send,
    StartTLS,
)
from courriel.proto.pop3.wire import normalize

OPEN = Pop3Settings(tls_available=True, login_allowed_without_tls=True)
SECURE = Pop3Settings(tls_available=True, login_allowed_without_tls=False)

MESSAGES = {
    "uid-1": b"From: a@example.test\r\nSubject: one\r\n\r\nHello\r\n",
    "uid-2": b"Subject: two\n\nline 1\n.hidden dot\n..two dots\nline 4\n",
    "uid-3": b"Subject: three\r\n\r\n.\r\n",
}


@dataclass(frozen=True)
class Drop:
    entries: Sequence[DropEntry]


@dataclass
class FakeStore:
    messages: dict[str, bytes] = field(default_factory=lambda: dict(MESSAGES))
    users: dict[str, str] = field(default_factory=lambda: {"alice": "secret"})
    locked: set[str] = field(default_factory=set)
    login_error: str | None = None
    commit_error: str | None = None
    committed: list[list[str]] = field(default_factory=list)

    def drop(self) -> Drop:
        return Drop([DropEntry(uid, len(normalize(body))) for uid, body in self.messages.items()])

    def answer(self, decision: Decision) -> LoginResult | bytes | str | None:
        if isinstance(decision, DecideLogin):
            if self.login_error is not None:
                return LoginResult(ok=False, error=self.login_error)
            if self.users.get(decision.username) != decision.password:
                return LoginResult(ok=False)
            if decision.username in self.locked:
                return LoginResult(ok=False, in_use=True)
            return LoginResult(ok=True, maildrop=self.drop())
        if isinstance(decision, DecideRetrieve):
            return self.messages.get(decision.uid)
        assert isinstance(decision, DecideCommit)
        self.committed.append(list(decision.deletions))
        return self.commit_error


class Harness:
    """Drives a session like the I/O layer would, resolving decisions at once (auto=True)."""

    def __init__(self, settings: Pop3Settings = OPEN, store: FakeStore | None = None, *, auto: bool = True):
        self.session = Pop3Session(settings)
        self.store = store or FakeStore()
        self.auto = auto
        self.decisions: list[Decision] = []
        self.tls_starts = 0
        self.closed = False
        self.started = False

    def start(self) -> str:
        self.started = True
        return self._carry_out(self.session.start())

    def feed(self, data: bytes) -> str:
        return self._carry_out(self.session.feed(data))

    def send(self, line: str) -> str:
        return self.feed(line.encode("utf-8") + b"\r\n")

    def resolve(self, result: LoginResult | bytes | str | None) -> str:
        return self._carry_out(self.session.resolve(result))

    def _carry_out(self, actions: list[Action]) -> str:
        out = b""
        while actions:
            action, actions = actions[0], actions[1:]
            assert not self.closed, f"action {action!r} after Close"
            if isinstance(action, Send):
                out += action.data
            elif isinstance(action, Close):
                self.closed = True
            elif isinstance(action, StartTLS):
                assert not actions, "StartTLS must be the last action"
                self.tls_starts += 1
                actions = self.session.tls_started()
            else:
                assert not actions, "a decision must be the last action"
                self.decisions.append(action)
                if self.auto:
                    actions = self.session.resolve(self.store.answer(action))
        return out.decode("utf-8")


def login(h: Harness, user: str = "alice", password: str = "secret") -> None:
    h.start()
    h.send(f"USER {user}")
    assert h.send(f"PASS {password}").startswith("+OK")


def run(h: Harness, script: str) -> None:
    """Play a transcript against `h`, checking every server line in order; the greeting
    comes first unless `h` was started already."""
    out = "" if h.started else h.start()
    expected: list[str] = []
    for raw in textwrap.dedent(script).strip().splitlines():
        line = raw.strip()
        if line.startswith("C:"):
            _check(out, expected)
            out, expected = h.send(line[3:]), []
        elif line.startswith("S:"):
            expected.append(line[3:])
        elif line == "** closed":
            _check(out, expected)
            out, expected = "", []
            assert h.closed, "the session should have closed"
        else:
            raise ValueError(f"bad transcript line {raw!r}")
    _check(out, expected)


def _check(out: str, expected: list[str]) -> None:
    assert out.endswith("\r\n") or not out, f"unterminated output {out!r}"
    got = [line.rstrip(" ") for line in out.split("\r\n")[:-1]]
    assert got == [line.rstrip(" ") for line in expected]
