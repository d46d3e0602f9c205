"""Transcript harness: an ImapSession over an in-memory mailbox and a wire that records output.

c = await client(...)            # greeting read
out = await c.send(b"a1 NOOP")   # everything the server wrote until it waits again
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest

from courriel.proto.imap.session import ImapSession, SessionConfig
from tests.unit.proto.imap.session.fakestore import FakeAuthenticator, Mailbox

SIMPLE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: Lunch meeting\r\n"
    b"Date: Fri, 27 Nov 2026 10:00:00 +0100\r\n"
    b"Message-ID: <m1@example.com>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Shall we meet at noon?\r\n"
)


def message(n: int, subject: str = "hello", body: str = "body text") -> bytes:
    return (
        f"From: sender{n}@example.com\r\nTo: alice@example.com\r\nSubject: {subject} {n}\r\n"
        f"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{n}@example.com>\r\n\r\n{body} {n}\r\n"
    ).encode()


class FakeWire:
    def __init__(self) -> None:
        self.sent = bytearray()
        self.writes = 0
        self.tls_started = False
        self.tls_ok = True
        self.closed = False
        self.paused = False

    async def send(self, data: bytes) -> None:
        self.writes += 1
        self.sent += data

    async def start_tls(self, ready: bytes) -> bool:
        self.sent += ready
        self.tls_started = True
        return self.tls_ok

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = bytes(self.sent)
        self.sent.clear()
        return data


class Client:
    def __init__(self, session: ImapSession, wire: FakeWire) -> None:
        self.session = session
        self.wire = wire
        self.task = asyncio.create_task(session.run())
        self.greeting = b""

    async def settle(self) -> None:
        """Until the session waits for input again (or has ended)."""
        for _ in range(10_000):
            await asyncio.sleep(0)
            if self.task.done() or (self.session.waiting and not self.session.out):
                return
        raise AssertionError("the session never came back to waiting")

    async def send(self, data: bytes) -> bytes:
        if not data.endswith(b"\n"):
            data += b"\r\n"
        self.session.data_received(data)
        await self.settle()
        return self.wire.take()

    async def lines(self, data: bytes) -> list[bytes]:
        return (await self.send(data)).split(b"\r\n")[:-1]

    async def login(self, user: bytes = b"alice", password: bytes = b"secret") -> bytes:
        out = await self.send(b"L1 LOGIN " + user + b" " + password)
        assert b"L1 OK" in out, out
        return out

    async def select(self, name: bytes = b"INBOX", extra: bytes = b"") -> bytes:
        out = await self.send(b"S1 SELECT " + name + extra)
        assert b"S1 OK" in out, out
        return out

    async def close(self) -> None:
        self.session.eof_received()
        await asyncio.wait_for(self.task, 5)


MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def authenticator(mailbox: Mailbox) -> FakeAuthenticator:
    return FakeAuthenticator({"alice": ("secret", mailbox), "bob": ("pw", Mailbox())})


@pytest.fixture
async def client(authenticator: FakeAuthenticator) -> AsyncIterator[MakeClient]:
    made: list[Client] = []

    async def make(**config: object) -> Client:
        base = SessionConfig(tls_active=True, tls_available=True)
        wire = FakeWire()
        session = ImapSession(replace(base, **config), wire, authenticator, "192.0.2.7")  # type: ignore[arg-type]
        c = Client(session, wire)
        made.append(c)
        await c.settle()
        c.greeting = wire.take()
        return c

    yield make
    for c in made:
        if not c.task.done():
            c.task.cancel()
            try:
                await c.task
            except asyncio.CancelledError:
                pass
