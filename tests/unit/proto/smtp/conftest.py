"""Transcript harness for the SMTP engine: a client that feeds bytes and a fake policy.

`Client.send(b"...")` feeds the session, answers every decision with `FakePolicy` and returns the
replies the server wrote, parsed back into `Reply` values so tests compare them with the shared
constants (`assert c.send(b"RSET\\r\\n") == [OK]`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from courriel.core.replies import AUTH_FAILED, AUTH_SUCCEEDED, QUEUED, RECIPIENT_OK, SENDER_OK, Reply
from courriel.proto.smtp import (
    Action,
    Close,
    DecideAuth,
    DecideConnect,
    DecideData,
    DecideHelo,
    DecideMail,
    DecideRcpt,
    Decision,
    Send,
    SessionSettings,
    SmtpSession,
    StartTLS,
    Trace,
)

_LINE = re.compile(rb"(\d{3})([ -])(.*)\r\n")
_ENHANCED = re.compile(r"([245]\.\d{1,3}\.\d{1,3}) (.*)\Z")


def parse_replies(data: bytes) -> list[Reply]:
    """Wire replies back to values; fails the test on anything that is not a well-formed reply."""
    replies: list[Reply] = []
    lines: list[tuple[int, str]] = []
    pos = 0
    while pos < len(data):
        match = _LINE.match(data, pos)
        assert match is not None, f"malformed reply at {data[pos : pos + 80]!r}"
        pos = match.end()
        lines.append((int(match.group(1)), match.group(3).decode()))
        if match.group(2) == b" ":
            codes = {code for code, _ in lines}
            assert len(codes) == 1, f"mixed codes in one reply: {lines}"
            enhanced = [_ENHANCED.match(text) for _, text in lines]
            if all(enhanced) and len({m.group(1) for m in enhanced if m}) == 1:
                texts = [m.group(2) for m in enhanced if m]
                first = enhanced[0]
                assert first is not None
                replies.append(Reply(lines[0][0], first.group(1), "\n".join(texts)))
            else:
                replies.append(Reply(lines[0][0], None, "\n".join(text for _, text in lines)))
            lines = []
    assert not lines, "unterminated multi-line reply"
    return replies


@dataclass
class FakePolicy:
    """Answers decisions synchronously; records them for assertions."""

    connect: Reply | None = None
    helo: Reply | None = None
    mail: Reply = SENDER_OK
    rejected_rcpts: set[str] = field(default_factory=set)
    rcpt_reject: Reply = Reply(550, "5.1.1", "User unknown")
    users: dict[str, str] = field(default_factory=lambda: {"alice": "secret"})
    data: Reply = QUEUED
    seen: list[Decision] = field(default_factory=list)

    def answer(self, decision: Decision) -> Reply | None:
        self.seen.append(decision)
        match decision:
            case DecideConnect():
                return self.connect
            case DecideHelo():
                return self.helo
            case DecideMail():
                return self.mail
            case DecideRcpt(rcpt=rcpt):
                return self.rcpt_reject if str(rcpt) in self.rejected_rcpts else RECIPIENT_OK
            case DecideAuth(username=user, password=password):
                return AUTH_SUCCEEDED if self.users.get(user) == password else AUTH_FAILED
            case DecideData():
                return self.data
        raise AssertionError(decision)

    def last(self, kind: type[Any]) -> Any:
        found = [d for d in self.seen if isinstance(d, kind)]
        assert found, f"no {kind.__name__} decision"
        return found[-1]


class Client:
    """Plays the peer and the I/O layer around one `SmtpSession`."""

    def __init__(self, policy: FakePolicy | None = None, *, trace: bool = False, **settings: Any) -> None:
        settings.setdefault("fqdn", "mx.example.com")
        settings.setdefault("banner", "mx.example.com ready")
        self.settings = SessionSettings(**settings)
        self.policy = policy or FakePolicy()
        self.session = SmtpSession(self.settings, peer=("192.0.2.1", 4242), trace=trace)
        self.closed = False
        self.tls_requested = False
        self.traces: list[str] = []
        self.greeting = self._run(self.session.start())

    def send(self, data: bytes) -> list[Reply]:
        return self._run(self.session.feed(data))

    def eof(self) -> list[Reply]:
        return self._run(self.session.eof())

    def complete_tls(self) -> list[Reply]:
        assert self.tls_requested
        self.tls_requested = False
        return self._run(self.session.tls_started())

    def ehlo(self, name: bytes = b"client.example.org") -> list[Reply]:
        return self.send(b"EHLO " + name + b"\r\n")

    def _run(self, actions: list[Action]) -> list[Reply]:
        out = bytearray()
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            assert not self.closed, f"action after Close: {action}"
            match action:
                case Send(data=data):
                    out += data
                case Close():
                    self.closed = True
                case StartTLS():
                    self.tls_requested = True
                case Trace(line=line):
                    self.traces.append(line)
                case _:
                    queue.extend(self.session.resolve(self.policy.answer(action)))
        return parse_replies(bytes(out))


@pytest.fixture
def client() -> Callable[..., Client]:
    """`client(**settings)`: a started session with the fake policy."""
    return Client


@pytest.fixture
def ready(client: Callable[..., Client]) -> Client:
    """A session past EHLO with default settings."""
    c = client()
    c.ehlo()
    return c
