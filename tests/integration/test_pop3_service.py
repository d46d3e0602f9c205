"""The POP3 back end on loopback sockets, over a real mailbox database (SQLite and PostgreSQL).

Clients: Python's poplib (in a thread) and a raw line client for transcripts. Covers STLS and
implicit TLS, SecureLogin, USER/PASS and AUTH PLAIN, RETR/TOP/UIDL/DELE against the store,
the maildrop lock ([IN-USE]), an IMAP expunge during a POP3 session, refused logins, throttling,
MaxConnections(PerUser), both timeouts, pipelining, the STLS injection defence, and stopping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import poplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from courriel.mailbox.flags import DELETED
from courriel.mailbox.store import MailboxDatabase
from courriel.org.cache import DirectoryCache
from courriel.org.directory import Directory
from courriel.org.model import LoginType, ProtocolSettings, Recipient
from courriel.org.snapshot import DirectorySnapshot
from courriel.security.throttle import LoginThrottle
from courriel.services.pop3.service import Pop3Service
from courriel.storage.blobs import BlobStore
from tests.integration.protocol_env import (
    PASSWORD,
    LineClient,
    Tls,
    deliver,
    make_tls,
    message,
    open_directory,
    plain,
    refresh,
)

HOST = "127.0.0.1"


@dataclass
class Env:
    directory: Directory
    cache: DirectoryCache
    store: MailboxDatabase
    service: Pop3Service
    tls: Tls
    alice: Recipient
    bob: Recipient
    stls_port: int
    tls_port: int
    timeouts: dict[str, float]  # below the directory's bounds, for tests only

    async def settings(self, **changes: object) -> None:
        await self.directory.set_protocol_settings("pop", **changes)
        await refresh(self.cache)

    async def session(self, user: str = "alice@example.test") -> LineClient:
        """Logged in over implicit TLS with AUTH PLAIN."""
        client = await LineClient.connect(HOST, self.tls_port, self.tls.client)
        assert (await client.line()).startswith("+OK")
        assert (await client.ask(f"AUTH PLAIN {plain(user, PASSWORD)}")).startswith("+OK Logged in")
        return client

    async def inbox_uids(self, recipient: Recipient) -> list[int]:
        assert recipient.guid is not None
        folder = await self.store.get_folder(recipient.guid, "INBOX")
        assert folder is not None
        return (await self.store.snapshot(folder.id)).uids


@pytest.fixture
async def env(db_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    directory = await open_directory(tmp_path)
    cache = DirectoryCache(directory)
    await cache.load()
    store = await MailboxDatabase.open("DB01", db_url, tmp_path, BlobStore(tmp_path / "blobs"))
    tls = make_tls(tmp_path / "tls")
    timeouts: dict[str, float] = {}

    def snapshot() -> DirectorySnapshot:
        current = cache.snapshot
        if not timeouts:
            return current
        pop: ProtocolSettings = dataclasses.replace(current.pop_settings, **timeouts)  # type: ignore[arg-type]
        return dataclasses.replace(current, pop_settings=pop)

    service = Pop3Service(
        snapshot=snapshot,
        databases={"DB01": store}.get,
        throttle=LoginThrottle(base_delay=0.0, max_delay=0.0),
        tls=tls.server,
    )
    stls_port = await service.start_listener(HOST, 0, implicit_tls=False)
    tls_port = await service.start_listener(HOST, 0, implicit_tls=True)
    alice = cache.snapshot.recipient("alice@example.test")
    bob = cache.snapshot.recipient("bob@example.test")
    assert alice is not None and bob is not None
    try:
        yield Env(directory, cache, store, service, tls, alice, bob, stls_port, tls_port, timeouts)
    finally:
        await service.stop(grace=1.0)
        await store.close()
        await directory.close()


def poplib_session(env: Env) -> dict[str, object]:
    """A whole session the way mail clients do it: STLS, USER/PASS, list, fetch, delete one."""
    pop = poplib.POP3(HOST, env.stls_port, timeout=10)
    try:
        caps_before = pop.capa()
        pop.stls(env.tls.client)
        caps_after = pop.capa()
        pop.user("alice@example.test")
        pop.pass_(PASSWORD)
        count, size = pop.stat()
        listing = pop.list()[1]
        uidl = pop.uidl()[1]
        first = b"\r\n".join(pop.retr(1)[1])
        top = pop.top(2, 1)[1]
        pop.dele(1)
        return {
            "caps_before": caps_before,
            "caps_after": caps_after,
            "stat": (count, size),
            "list": listing,
            "uidl": uidl,
            "first": first,
            "top": top,
        }
    finally:
        pop.quit()


async def test_poplib_session_reads_and_deletes_from_the_store(env: Env) -> None:
    uids = [await deliver(env.store, env.alice, message(n), f"k{n}") for n in (1, 2)]
    result = await asyncio.to_thread(poplib_session, env)
    caps_before, caps_after = result["caps_before"], result["caps_after"]
    assert isinstance(caps_before, dict) and isinstance(caps_after, dict)
    # SecureLogin: no USER or SASL before TLS, STLS offered; after TLS the reverse.
    assert "STLS" in caps_before and "USER" not in caps_before and "SASL" not in caps_before
    assert "USER" in caps_after and caps_after["SASL"] == ["PLAIN"] and "STLS" not in caps_after
    sizes = [len(message(n)) for n in (1, 2)]
    assert result["stat"] == (2, sum(sizes))
    assert result["list"] == [f"{i} {s}".encode() for i, s in enumerate(sizes, 1)]
    folder = await env.store.get_folder(env.alice.guid or "", "INBOX")
    assert folder is not None
    assert result["uidl"] == [f"{i} {folder.uidvalidity}.{uid}".encode() for i, uid in enumerate(uids, 1)]
    assert result["first"] == message(1).rstrip(b"\r\n")  # poplib unstuffs the dot line
    assert result["top"] == message(2).split(b"\r\n")[:6]  # 4 header lines, the blank, 1 body line
    assert await env.inbox_uids(env.alice) == [uids[1]]


async def test_auth_plain_over_implicit_tls_and_pipelining(env: Env) -> None:
    await deliver(env.store, env.alice, message(1), "k1")
    client = await LineClient.connect(HOST, env.tls_port, env.tls.client)
    assert (await client.line()).startswith("+OK")
    await client.send(
        f"AUTH PLAIN {plain('alice@example.test', PASSWORD)}\r\nSTAT\r\nUIDL\r\nRETR 1\r\nQUIT\r\n"
    )
    assert (await client.line()).startswith("+OK Logged in, 1 messages")
    assert await client.line() == f"+OK 1 {len(message(1))}\r\n"
    assert (await client.line()).startswith("+OK")
    assert len(await client.multiline()) == 1
    assert (await client.line()).startswith("+OK")
    body = await client.multiline()
    assert "..starts with a dot" in body  # dot-stuffed on the wire (RFC 1939 §3)
    assert await client.line() == "+OK Bye\r\n"
    assert await client.rest() == b""
    await client.close()


async def test_secure_login_refuses_credentials_before_tls(env: Env) -> None:
    client = await LineClient.connect(HOST, env.stls_port)
    await client.line()
    assert (await client.ask("USER alice@example.test")).startswith("-ERR [AUTH]")
    assert (await client.ask(f"AUTH PLAIN {plain('alice@example.test', PASSWORD)}")).startswith("-ERR [AUTH]")
    await client.close()
    # PlainTextLogin lets the same client in without TLS (Set-PopSettings -LoginType).
    await env.settings(login_type=LoginType.PLAIN_TEXT_LOGIN)
    client = await LineClient.connect(HOST, env.stls_port)
    await client.line()
    assert (await client.ask("USER alice@example.test")).startswith("+OK")
    assert (await client.ask(f"PASS {PASSWORD}")).startswith("+OK Logged in")
    await client.close()


async def test_stls_drops_commands_pipelined_in_plaintext(env: Env) -> None:
    client = await LineClient.connect(HOST, env.stls_port)
    await client.line()
    await client.send("STLS\r\nQUIT\r\n")  # the injected QUIT must not run inside TLS
    assert (await client.line()).startswith("+OK")
    await client.starttls(env.tls.client, "127.0.0.1")
    # Had QUIT run, the next line would be "+OK Bye"; the answer is to our NOOP.
    assert await client.ask("NOOP") == "-ERR Command not valid in this state\r\n"
    assert (await client.ask(f"AUTH PLAIN {plain('alice@example.test', PASSWORD)}")).startswith(
        "+OK Logged in"
    )
    await client.close()


async def test_second_session_gets_in_use_until_the_first_quits(env: Env) -> None:
    first = await env.session()
    second = await LineClient.connect(HOST, env.tls_port, env.tls.client)
    await second.line()
    auth = f"AUTH PLAIN {plain('alice@example.test', PASSWORD)}"
    assert (await second.ask(auth)).startswith("-ERR [IN-USE]")
    assert (await first.ask("QUIT")) == "+OK Bye\r\n"
    await first.close()
    assert (await second.ask(auth)).startswith("+OK Logged in")  # same connection, retried
    # bob's maildrop is not alice's
    bob = await env.session("bob@example.test")
    await bob.close()
    await second.close()


async def test_imap_expunge_during_a_pop3_session(env: Env) -> None:
    uids = [await deliver(env.store, env.alice, message(n), f"k{n}") for n in (1, 2, 3)]
    client = await env.session()
    # An IMAP client of the same Inbox flags message 1 \Deleted and expunges it.
    folder = await env.store.get_folder(env.alice.guid or "", "INBOX")
    assert folder is not None
    await env.store.store_flags(folder.id, [uids[0]], "add", DELETED)
    assert await env.store.expunge(folder.id) == [uids[0]]
    assert (await client.ask("RETR 1")) == "-ERR Message is no longer available\r\n"
    assert (await client.ask("TOP 2 0")).startswith("+OK")
    await client.multiline()
    assert (await client.ask("DELE 1")).startswith("+OK")  # gone already: fine at QUIT
    assert (await client.ask("DELE 3")).startswith("+OK")
    assert (await client.ask("QUIT")) == "+OK Bye\r\n"
    await client.close()
    assert await env.inbox_uids(env.alice) == [uids[1]]


async def test_refused_logins_look_alike(env: Env) -> None:
    await env.directory.set_mailbox("bob@example.test", pop_enabled=False)
    await refresh(env.cache)
    client = await LineClient.connect(HOST, env.tls_port, env.tls.client)
    await client.line()
    for user, password in (
        ("alice@example.test", "wrong"),
        ("nobody@example.test", PASSWORD),
        ("bob@example.test", PASSWORD),  # PopEnabled false
    ):
        assert (
            await client.ask(f"AUTH PLAIN {plain(user, password)}") == "-ERR [AUTH] Authentication failed\r\n"
        )
    assert await client.rest() == b""  # the third failure closes (max_failures)
    await client.close()


async def test_throttle_blocks_the_right_password_after_failures(env: Env) -> None:
    # LoginThrottle's default: 5 failures in the window; the engine hangs up after 3 per connection.
    for failures in (3, 2):
        client = await LineClient.connect(HOST, env.tls_port, env.tls.client)
        await client.line()
        for _ in range(failures):
            assert (await client.ask(f"AUTH PLAIN {plain('alice@example.test', 'bad')}")).startswith(
                "-ERR [AUTH]"
            )
        await client.close()
    client = await LineClient.connect(HOST, env.tls_port, env.tls.client)
    await client.line()
    assert (await client.ask(f"AUTH PLAIN {plain('alice@example.test', PASSWORD)}")).startswith("-ERR [AUTH]")
    # bob, from the same address, is blocked too: the address has 5 failures
    assert (await client.ask(f"AUTH PLAIN {plain('bob@example.test', PASSWORD)}")).startswith("-ERR [AUTH]")
    await client.close()


async def test_protocol_disabled_refuses_logins(env: Env) -> None:
    await env.settings(enabled=False)
    client = await LineClient.connect(HOST, env.tls_port, env.tls.client)
    await client.line()
    assert (await client.ask(f"AUTH PLAIN {plain('alice@example.test', PASSWORD)}")).startswith("-ERR [AUTH]")
    await client.close()


async def test_connection_limits(env: Env) -> None:
    await env.settings(max_connections_per_user=1)
    first = await env.session()
    second = await LineClient.connect(HOST, env.tls_port, env.tls.client)
    await second.line()
    answer = await second.ask(f"AUTH PLAIN {plain('alice@example.test', PASSWORD)}")
    assert answer == "-ERR [SYS/TEMP] Too many sessions for this user\r\n"
    await second.close()
    await env.settings(max_connections=1)
    third = await LineClient.connect(HOST, env.tls_port, env.tls.client)
    assert await third.line() == "-ERR [SYS/TEMP] Too many connections, try again later\r\n"
    assert await third.rest() == b""
    await third.close()
    await first.close()


async def test_timeouts_end_sessions_without_deleting(env: Env) -> None:
    uid = await deliver(env.store, env.alice, message(1), "k1")
    env.timeouts.update(pre_authenticated_connection_timeout=0.2, authenticated_connection_timeout=0.4)
    idle = await LineClient.connect(HOST, env.tls_port, env.tls.client)
    await idle.line()
    assert await idle.line() == "-ERR Disconnected for inactivity\r\n"
    assert await idle.rest() == b""
    client = await env.session()
    assert (await client.ask("DELE 1")).startswith("+OK")
    assert await client.line() == "-ERR Disconnected for inactivity\r\n"  # no QUIT: no UPDATE
    await client.close()
    assert await env.inbox_uids(env.alice) == [uid]
    # the lock went with the session
    again = await env.session()
    await again.close()


async def test_empty_mailbox_never_delivered_to(env: Env) -> None:
    client = await env.session("bob@example.test")
    assert await client.ask("STAT") == "+OK 0 0\r\n"
    assert await client.ask("QUIT") == "+OK Bye\r\n"
    await client.close()


async def test_stop_says_goodbye_to_idle_sessions(env: Env) -> None:
    client = await env.session()
    await env.service.stop(grace=1.0)
    assert await client.line() == "-ERR [SYS/TEMP] Service shutting down, try again later\r\n"
    assert await client.rest() == b""
    await client.close()
