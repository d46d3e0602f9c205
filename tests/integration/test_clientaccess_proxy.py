"""The Client Access front ends proxying over the network to back ends on another address.

CAS1's front ends listen on 127.0.0.3; MBX1's back ends on 127.0.0.2 at 1995/1993 plus MBX1's
port offset, found through the directory (database → server → address, port_offset). POP3 goes
to the real POP3 back end over a real mailbox database; IMAP4 goes to a scripted back end that
records what the front end sends, so the login hop, the replay of the tagged OK and the relay of
pipelined input are checked byte for byte. The hop is TLS with certificate verification.
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from courriel.clientaccess.imap import ImapFrontEnd
from courriel.clientaccess.locator import BackendLocator
from courriel.clientaccess.pop3 import Pop3FrontEnd
from courriel.mailbox.flags import FLAGGED
from courriel.mailbox.store import MailboxDatabase
from courriel.org.cache import DirectoryCache
from courriel.org.directory import Directory
from courriel.org.model import Recipient
from courriel.org.snapshot import DirectorySnapshot
from courriel.security.throttle import LoginThrottle
from courriel.services.imap import ImapService
from courriel.services.pop3.service import Pop3Service
from courriel.services.stream import Connection
from courriel.storage.blobs import BlobStore
from tests.integration.protocol_env import (
    BACKEND_HOST,
    FRONTEND_HOST,
    PASSWORD,
    LineClient,
    Tls,
    deliver,
    free_offset,
    make_tls,
    message,
    open_directory,
    plain,
    refresh,
)


@dataclass
class FakeImapBackend:
    """A scripted IMAP4 back end: PLAIN for alice only, then a few canned answers."""

    sasl_ir: bool = True
    refuse: bytes | None = None  # e.g. b"NO [UNAVAILABLE] Not now"
    received: list[bytes] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[0])
        caps = b"IMAP4rev1 AUTH=PLAIN" + (b" SASL-IR" if self.sasl_ir else b"")
        writer.write(b"* OK [CAPABILITY " + caps + b"] fake back end ready\r\n")
        try:
            while line := await reader.readline():
                self.received.append(line)
                tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
                verb = rest.split(b" ")[0].upper()
                if verb == b"AUTHENTICATE":
                    token = rest.split(b" ")[2] if rest.count(b" ") == 2 else None
                    if token is None:
                        writer.write(b"+ \r\n")
                        token = (await reader.readline()).rstrip(b"\r\n")
                        self.received.append(token)
                    ok = token.decode() == plain("alice@example.test", PASSWORD)
                    if self.refuse is not None:
                        writer.write(tag + b" " + self.refuse + b"\r\n")
                    elif ok:
                        writer.write(b"* OK [ALERT] from the back end\r\n")
                        writer.write(tag + b" OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n")
                    else:
                        writer.write(tag + b" NO [AUTHENTICATIONFAILED] Authentication failed\r\n")
                elif verb == b"SELECT":
                    writer.write(
                        b"* 3 EXISTS\r\n* FLAGS (\\Seen)\r\n" + tag + b" OK [READ-WRITE] SELECT completed\r\n"
                    )
                elif verb == b"LOGOUT":
                    writer.write(b"* BYE bye\r\n" + tag + b" OK LOGOUT completed\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(tag + b" OK " + verb + b" completed\r\n")
                await writer.drain()
        finally:
            writer.close()


@dataclass
class Env:
    directory: Directory
    cache: DirectoryCache
    store: MailboxDatabase
    tls: Tls
    backend: Pop3Service
    pop3: Pop3FrontEnd
    imap: ImapFrontEnd
    fake: FakeImapBackend
    alice: Recipient
    ports: dict[str, int]
    backend_peers: list[str]
    fake_server: asyncio.Server
    offset: int

    async def pop3_session(self) -> LineClient:
        client = await LineClient.connect(FRONTEND_HOST, self.ports["pop3s"], self.tls.client)
        assert (await client.line()).startswith("+OK")
        assert (await client.ask(f"AUTH PLAIN {plain('alice@example.test', PASSWORD)}")).startswith(
            "+OK Logged in"
        )
        return client


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    offset = free_offset(BACKEND_HOST, (1993, 1995))
    directory = await open_directory(tmp_path, offset)
    cache = DirectoryCache(directory)
    await cache.load()
    store = await MailboxDatabase.open(
        "DB01", f"sqlite:///{tmp_path / 'db01.db'}", tmp_path, BlobStore(tmp_path / "blobs")
    )
    tls = make_tls(tmp_path / "tls")
    throttle = LoginThrottle(base_delay=0.0, max_delay=0.0)

    def snapshot() -> DirectorySnapshot:
        return cache.snapshot

    backend = Pop3Service(snapshot=snapshot, databases={"DB01": store}.get, throttle=throttle, tls=tls.server)
    peers: list[str] = []
    serve = backend.listeners.handler

    async def counting(connection: Connection) -> None:
        peers.append(connection.peer[0])
        await serve(connection)

    backend.listeners.handler = counting
    await backend.start_listener(BACKEND_HOST, 1995 + offset, implicit_tls=True)
    fake = FakeImapBackend()
    fake_server = await asyncio.start_server(fake.serve, BACKEND_HOST, 1993 + offset, ssl=tls.server)
    # CAS1 finds MBX1 in the directory; the hop verifies the back end's certificate.
    locator = BackendLocator(snapshot, "CAS1", [FRONTEND_HOST])
    pop3 = Pop3FrontEnd(
        snapshot=snapshot, throttle=throttle, tls=tls.server, locator=locator, backend_tls=tls.client
    )
    imap = ImapFrontEnd(
        snapshot=snapshot, throttle=throttle, tls=tls.server, locator=locator, backend_tls=tls.client
    )
    ports = {
        "pop3": await pop3.start_listener(FRONTEND_HOST, 0, implicit_tls=False),
        "pop3s": await pop3.start_listener(FRONTEND_HOST, 0, implicit_tls=True),
        "imap": await imap.start_listener(FRONTEND_HOST, 0, implicit_tls=False),
        "imaps": await imap.start_listener(FRONTEND_HOST, 0, implicit_tls=True),
    }
    alice = cache.snapshot.recipient("alice@example.test")
    assert alice is not None
    try:
        yield Env(
            directory, cache, store, tls, backend, pop3, imap, fake, alice, ports, peers, fake_server, offset
        )
    finally:
        for service in (pop3, imap, backend):
            await service.stop(grace=1.0)
        fake_server.close()
        await store.close()
        await directory.close()


# ---- POP3 ----------------------------------------------------------------------------------


def poplib_via_front_end(env: Env) -> tuple[int, list[bytes], bytes]:
    pop = poplib.POP3(FRONTEND_HOST, env.ports["pop3"], timeout=10)
    try:
        pop.stls(env.tls.client)
        pop.user("alice@example.test")
        pop.pass_(PASSWORD)
        count = pop.stat()[0]
        uidl = pop.uidl()[1]
        body = b"\r\n".join(pop.retr(2)[1])
        pop.dele(1)
    finally:
        pop.quit()
    return count, uidl, body


async def test_pop3_session_through_the_front_end(env: Env) -> None:
    uids = [await deliver(env.store, env.alice, message(n), f"k{n}") for n in (1, 2)]
    count, uidl, body = await asyncio.to_thread(poplib_via_front_end, env)
    assert count == 2
    assert [line.split()[0] for line in uidl] == [b"1", b"2"]
    assert body == message(2).rstrip(b"\r\n")
    folder = await env.store.get_folder(env.alice.guid or "", "INBOX")
    assert folder is not None
    assert (await env.store.snapshot(folder.id)).uids == [uids[1]]
    assert len(env.backend_peers) == 1  # the front end's one connection to MBX1


async def test_pop3_input_pipelined_behind_the_login_reaches_the_back_end(env: Env) -> None:
    await deliver(env.store, env.alice, message(1), "k1")
    client = await LineClient.connect(FRONTEND_HOST, env.ports["pop3s"], env.tls.client)
    await client.line()
    await client.send(f"AUTH PLAIN {plain('alice@example.test', PASSWORD)}\r\nSTAT\r\nLIST\r\nQUIT\r\n")
    assert (await client.line()).startswith("+OK Logged in, 1 messages")
    assert await client.line() == f"+OK 1 {len(message(1))}\r\n"
    assert (await client.line()).startswith("+OK")
    assert await client.multiline() == [f"1 {len(message(1))}"]
    assert await client.line() == "+OK Bye\r\n"
    assert await client.rest() == b""
    await client.close()


async def test_pop3_refusals_at_the_front_end_cost_no_back_end_connection(env: Env) -> None:
    client = await LineClient.connect(FRONTEND_HOST, env.ports["pop3s"], env.tls.client)
    await client.line()
    assert (await client.ask("USER alice@example.test")).startswith("+OK")
    assert await client.ask("PASS wrong") == "-ERR [AUTH] Authentication failed\r\n"
    assert await client.ask("QUIT") == "+OK Bye\r\n"
    await client.close()
    assert env.backend_peers == []


async def test_pop3_in_use_comes_back_from_the_back_end(env: Env) -> None:
    first = await env.pop3_session()
    second = await LineClient.connect(FRONTEND_HOST, env.ports["pop3s"], env.tls.client)
    await second.line()
    auth = f"AUTH PLAIN {plain('alice@example.test', PASSWORD)}"
    assert (await second.ask(auth)).startswith("-ERR [IN-USE]")
    assert await first.ask("QUIT") == "+OK Bye\r\n"
    await first.close()
    assert (await second.ask(auth)).startswith("+OK Logged in")
    await second.close()


async def test_pop3_back_end_down_or_database_dismounted(env: Env) -> None:
    await env.backend.stop(grace=1.0)
    client = await LineClient.connect(FRONTEND_HOST, env.ports["pop3s"], env.tls.client)
    await client.line()
    auth = f"AUTH PLAIN {plain('alice@example.test', PASSWORD)}"
    assert await client.ask(auth) == "-ERR [SYS/TEMP] Mailbox server unavailable, try again later\r\n"
    await env.directory.dismount_database("DB01")
    await refresh(env.cache)
    assert await client.ask(auth) == "-ERR [SYS/TEMP] Mailbox server unavailable, try again later\r\n"
    assert await client.ask("QUIT") == "+OK Bye\r\n"  # still our session, still answering
    await client.close()


# ---- IMAP4 ---------------------------------------------------------------------------------


def imaplib_over_tls(env: Env) -> tuple[str, list[bytes], list[bytes | None]]:
    imap = imaplib.IMAP4_SSL(FRONTEND_HOST, env.ports["imaps"], ssl_context=env.tls.client, timeout=10)
    try:
        assert "AUTH=PLAIN" in imap.capabilities and "STARTTLS" not in imap.capabilities
        typ, data = imap.login("alice@example.test", PASSWORD)
        selected = imap.select("INBOX")[1]
        return typ, data, selected
    finally:
        imap.logout()


async def test_imap_login_is_replayed_under_the_client_tag(env: Env) -> None:
    typ, data, selected = await asyncio.to_thread(imaplib_over_tls, env)
    assert typ == "OK" and data == [b"[CAPABILITY IMAP4rev1 IDLE MOVE] Logged in"]
    assert selected == [b"3"]
    assert len(env.fake.peers) == 1
    expected = f"cas1 AUTHENTICATE PLAIN {plain('alice@example.test', PASSWORD)}\r\n".encode()
    assert env.fake.received[0] == expected  # SASL-IR: one round trip
    assert env.fake.received[1].endswith(b' SELECT "INBOX"\r\n') or env.fake.received[1].endswith(
        b" SELECT INBOX\r\n"
    )


def imaplib_starttls(env: Env) -> tuple[list[str], list[str], str, str]:
    imap = imaplib.IMAP4(FRONTEND_HOST, env.ports["imap"], timeout=10)
    try:
        before = list(imap.capabilities)
        try:
            imap.login("alice@example.test", PASSWORD)
            refused = "no error"
        except imaplib.IMAP4.error as error:
            refused = str(error)
        imap.starttls(env.tls.client)
        after = list(imap.capabilities)
        typ, _ = imap.authenticate("PLAIN", lambda _: f"\0alice@example.test\0{PASSWORD}".encode())
        return before, after, refused, typ
    finally:
        imap.logout()


async def test_imap_starttls_then_authenticate_plain_without_initial_response(env: Env) -> None:
    env.fake.sasl_ir = False
    before, after, refused, typ = await asyncio.to_thread(imaplib_starttls, env)
    assert "STARTTLS" in before and "LOGINDISABLED" in before and "AUTH=PLAIN" not in before
    assert "PRIVACYREQUIRED" in refused
    assert "AUTH=PLAIN" in after and "STARTTLS" not in after
    assert typ == "OK"
    # No SASL-IR at the back end: the two-step exchange.
    assert env.fake.received[:2] == [
        b"cas1 AUTHENTICATE PLAIN\r\n",
        plain("alice@example.test", PASSWORD).encode(),
    ]


async def test_imap_pipelined_commands_follow_the_login(env: Env) -> None:
    client = await LineClient.connect(FRONTEND_HOST, env.ports["imaps"], env.tls.client)
    greeting = await client.line()
    assert greeting.startswith("* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN]")
    await client.send('a1 LOGIN {18+}\r\nalice@example.test "secret"\r\na2 NOOP\r\na3 LOGOUT\r\n')
    assert await client.until_tagged("a1") == [
        "* OK [ALERT] from the back end",
        "a1 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in",
    ]
    assert await client.until_tagged("a2") == ["a2 OK NOOP completed"]
    assert await client.until_tagged("a3") == ["* BYE bye", "a3 OK LOGOUT completed"]
    assert await client.rest() == b""
    await client.close()
    assert env.fake.received[1:] == [b"a2 NOOP\r\n", b"a3 LOGOUT\r\n"]


@pytest.mark.parametrize(
    ("refuse", "expected"),
    [
        (b"NO [AUTHENTICATIONFAILED] No", "a1 NO [AUTHENTICATIONFAILED] Authentication failed"),
        (b"NO [UNAVAILABLE] Not now", "a1 NO [UNAVAILABLE] Mailbox server unavailable, try again later"),
        (b"NO [LIMIT] Too many", "a1 NO [LIMIT] Too many connections for this user"),
    ],
)
async def test_imap_back_end_refusals(env: Env, refuse: bytes, expected: str) -> None:
    env.fake.refuse = refuse
    client = await LineClient.connect(FRONTEND_HOST, env.ports["imaps"], env.tls.client)
    await client.line()
    assert await client.ask(f'a1 LOGIN alice@example.test "{PASSWORD}"') == expected + "\r\n"
    assert await client.ask("a2 NOOP") == "a2 OK NOOP completed\r\n"  # still the front end's session
    await client.close()


async def test_imap_wrong_password_never_reaches_the_back_end(env: Env) -> None:
    client = await LineClient.connect(FRONTEND_HOST, env.ports["imaps"], env.tls.client)
    await client.line()
    assert (
        await client.ask("a1 LOGIN alice@example.test wrong")
        == "a1 NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    )
    assert await client.ask("a2 SELECT INBOX") == "a2 BAD Log in first\r\n"
    await client.close()
    assert env.fake.peers == []


def imaplib_session(env: Env) -> tuple[bytes, list[bytes | tuple[bytes, bytes]]]:
    with imaplib.IMAP4(FRONTEND_HOST, env.ports["imap"], timeout=10) as client:
        client.starttls(env.tls.client)
        client.login("alice@example.test", PASSWORD)
        count = client.select("INBOX")[1][0]
        assert client.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
        fetched = client.fetch("2", "(BODY.PEEK[])")[1]
        client.logout()
    assert count is not None
    return count, fetched  # type: ignore[return-value]


async def test_imap_through_the_front_end_to_the_real_back_end(env: Env) -> None:
    env.fake_server.close()
    await env.fake_server.wait_closed()
    service = ImapService(
        databases={"DB01": env.store}.get,
        directory=lambda: env.cache.snapshot,
        settings=lambda: env.cache.snapshot.imap_settings,
        tls=env.tls.server,
        throttle=LoginThrottle(),
        server_name="MBX1",
        fqdn="mbx1.example.test",
    )
    await service.start_listener(BACKEND_HOST, 1993 + env.offset, implicit_tls=True)
    try:
        uids = [await deliver(env.store, env.alice, message(n), f"k{n}") for n in (1, 2)]
        count, fetched = await asyncio.to_thread(imaplib_session, env)
    finally:
        await service.stop(grace=1.0)
    assert count == b"2"
    assert isinstance(fetched[0], tuple) and fetched[0][1] == message(2)
    folder = await env.store.get_folder(env.alice.guid or "", "INBOX")
    assert folder is not None
    meta = await env.store.message_meta(folder.id, uids)
    assert [m.flags & FLAGGED for m in meta] == [FLAGGED, 0]


async def test_locator_reaches_a_co_located_back_end_on_our_own_address(env: Env) -> None:
    locator = BackendLocator(lambda: env.cache.snapshot, "mbx1", ["0.0.0.0"])
    endpoint = locator.locate(env.alice, "imap-backend")
    assert endpoint is not None
    mbx1 = env.cache.snapshot.server("MBX1")
    assert mbx1 is not None
    assert (endpoint.host, endpoint.port) == ("127.0.0.1", 1993 + mbx1.port_offset)
    remote = BackendLocator(lambda: env.cache.snapshot, "CAS1", ["0.0.0.0"]).locate(env.alice, "pop3-backend")
    assert remote is not None and remote.host == BACKEND_HOST
