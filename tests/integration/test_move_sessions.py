"""Open IMAP and POP3 sessions across a mailbox move (`courriel.mailbox.move`), with imaplib and
poplib against the back ends on loopback, over SQLite and PostgreSQL mailbox databases.

- While the move fences the source copy, a write answers a temporary error and changes nothing:
  IMAP `NO [UNAVAILABLE]` (RFC 5530) for STORE, APPEND, COPY, MOVE and EXPUNGE; POP3 QUIT
  `-ERR [SYS/TEMP]` (RFC 3206) and the messages stay; the session goes on.
- After the move, a session opened before it ends so that its client reconnects: IMAP
  `* BYE [UNAVAILABLE]` at the next command and during IDLE, POP3 `-ERR [SYS/TEMP]` at the
  next command; a new login reads the mail from the new database.
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from courriel.mailbox.fence import LOCKED, MoveFence
from courriel.mailbox.move import Side, move_mailbox
from courriel.mailbox.store import MailboxDatabase
from courriel.org.cache import DirectoryCache
from courriel.org.directory import Directory
from courriel.org.model import Recipient
from courriel.security.throttle import LoginThrottle
from courriel.services.imap import ImapService
from courriel.services.pop3.service import Pop3Service
from courriel.storage.blobs import BlobStore
from tests.conftest import create_pg_database, drop_pg_database
from tests.integration.protocol_env import PASSWORD, Tls, deliver, make_tls, message, open_directory, refresh

HOST = "127.0.0.1"
ALICE = "alice@example.test"


@dataclass
class Env:
    directory: Directory
    cache: DirectoryCache
    source: Side
    target: Side
    tls: Tls
    alice: Recipient
    imap_port: int
    pop_port: int
    mounted: dict[str, MailboxDatabase]

    @property
    def guid(self) -> str:
        assert self.alice.guid is not None
        return self.alice.guid

    def imap(self) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL(HOST, self.imap_port, ssl_context=self.tls.client, timeout=20)
        client.login(ALICE, PASSWORD)
        return client

    def pop(self) -> poplib.POP3_SSL:
        client = poplib.POP3_SSL(HOST, self.pop_port, context=self.tls.client, timeout=20)
        client.user(ALICE)
        client.pass_(PASSWORD)
        return client

    async def move(self) -> None:
        async def switch() -> None:
            await self.directory.switch_mailbox_database(ALICE, "DB02", expected="DB01")
            await refresh(self.cache)

        await move_mailbox(
            self.source, self.target, self.guid, ALICE, switch=switch, quota=None, progress=lambda _: None
        )


async def open_side(name: str, url: str, tmp_path: Path) -> Side:
    db = await MailboxDatabase.open(name, url, tmp_path, BlobStore(tmp_path / f"blobs-{name}"))
    return Side(db, await MoveFence.open(url, tmp_path))


@pytest.fixture
async def env(db_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    target_url = (
        f"sqlite:///{tmp_path / 'target.db'}" if db_url.startswith("sqlite") else await create_pg_database()
    )
    directory = await open_directory(tmp_path)
    await directory.new_database("DB02", target_url, "MBX1")
    cache = DirectoryCache(directory)
    await cache.load()
    source = await open_side("DB01", db_url, tmp_path)
    target = await open_side("DB02", target_url, tmp_path)
    mounted = {"DB01": source.db, "DB02": target.db}
    tls = make_tls(tmp_path / "tls")
    throttle = LoginThrottle(base_delay=0.0, max_delay=0.0)
    imap = ImapService(
        databases=mounted.get,
        directory=lambda: cache.snapshot,
        settings=lambda: cache.snapshot.imap_settings,
        tls=tls.server,
        throttle=throttle,
        server_name="MBX1",
        fqdn="mbx1.example.test",
        poll_interval=0.2,
    )
    pop = Pop3Service(
        snapshot=lambda: cache.snapshot, databases=mounted.get, throttle=throttle, tls=tls.server
    )
    alice = cache.snapshot.recipient(ALICE)
    assert alice is not None
    try:
        imap_port = await imap.start_listener(HOST, 0, implicit_tls=True)
        pop_port = await pop.start_listener(HOST, 0, implicit_tls=True)
        for n in (1, 2):
            await deliver(source.db, alice, message(n), f"key-{n}")
        yield Env(directory, cache, source, target, tls, alice, imap_port, pop_port, mounted)
    finally:
        await imap.stop(grace=1.0)
        await pop.stop(grace=1.0)
        for side in (source, target):
            await side.fence.close()
            await side.db.close()
        await directory.close()
        if not target_url.startswith("sqlite"):
            await drop_pg_database(target_url)


def subjects(client: imaplib.IMAP4_SSL) -> list[bytes]:
    typ, data = client.select("INBOX")
    assert typ == "OK", data
    typ, fetched = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK", fetched
    return [item[1].strip() for item in fetched if isinstance(item, tuple)]


async def test_fenced_imap_writes_answer_no_unavailable(env: Env) -> None:
    client = await asyncio.to_thread(env.imap)
    try:
        await asyncio.to_thread(client.create, "Archive")
        await asyncio.to_thread(client.select, "INBOX")
        await env.source.fence.raise_fence(env.guid, LOCKED)
        writes = {
            "STORE": lambda: client.store("1", "+FLAGS", "(\\Seen)"),
            "APPEND": lambda: client.append("INBOX", None, None, message(3)),
            "COPY": lambda: client.copy("1", "Archive"),
            "MOVE": lambda: client._simple_command("MOVE", "1", "Archive"),
            "EXPUNGE": lambda: client.expunge(),
            "CREATE": lambda: client.create("Other"),
        }
        for name, write in writes.items():
            typ, data = await asyncio.to_thread(write)
            assert typ == "NO", (name, data)
            assert data[0].startswith(b"[UNAVAILABLE] "), (name, data)
        assert (await asyncio.to_thread(client.noop))[0] == "OK"  # the session goes on
        await env.source.fence.lift(env.guid)
        typ, data = await asyncio.to_thread(client.store, "1", "+FLAGS", "(\\Seen)")
        assert typ == "OK", data
        assert len(await asyncio.to_thread(subjects, client)) == 2
    finally:
        await asyncio.to_thread(client.logout)


async def test_fenced_pop3_quit_answers_sys_temp_and_keeps_the_mail(env: Env) -> None:
    client = await asyncio.to_thread(env.pop)
    await asyncio.to_thread(client.dele, 1)
    await env.source.fence.raise_fence(env.guid, LOCKED)
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[SYS/TEMP\] "):
        await asyncio.to_thread(client.quit)
    await env.source.fence.lift(env.guid)
    again = await asyncio.to_thread(env.pop)
    try:
        assert (await asyncio.to_thread(again.stat))[0] == 2
    finally:
        await asyncio.to_thread(again.quit)


def idle_until_bye(
    client: imaplib.IMAP4_SSL, started: asyncio.Event, loop: asyncio.AbstractEventLoop
) -> bytes:
    """IDLE (imaplib has none before 3.14), then read until the server's next line after `+`."""
    client.send(b"i1 IDLE\r\n")
    assert client.readline().startswith(b"+ ")
    loop.call_soon_threadsafe(started.set)
    for _ in range(100):  # keepalives aside, the next line must be the BYE
        line = client.readline()
        if not line.startswith(b"* OK Still here"):
            return line
    raise AssertionError("no BYE")


async def test_sessions_open_across_a_move_are_told_to_reconnect(env: Env) -> None:
    busy, idler = await asyncio.to_thread(env.imap), await asyncio.to_thread(env.imap)
    pop = await asyncio.to_thread(env.pop)
    await asyncio.to_thread(busy.select, "INBOX")
    await asyncio.to_thread(idler.select, "INBOX")
    started = asyncio.Event()
    idling = asyncio.create_task(
        asyncio.to_thread(idle_until_bye, idler, started, asyncio.get_running_loop())
    )
    await asyncio.wait_for(started.wait(), 30)  # bounded: a failed IDLE never sets it
    await env.move()

    assert await idling == b"* BYE [UNAVAILABLE] mailbox moved, please reconnect\r\n"
    assert idler.readline() == b""  # and the back end hangs up
    with pytest.raises(imaplib.IMAP4.abort, match="mailbox moved, please reconnect"):
        await asyncio.to_thread(busy.noop)
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[SYS/TEMP\] Mailbox moved"):
        await asyncio.to_thread(pop.stat)
    for client in (busy, idler):
        client.shutdown()
    pop.close()

    fresh = await asyncio.to_thread(env.imap)
    try:
        assert await asyncio.to_thread(subjects, fresh) == [b"Subject: message 1", b"Subject: message 2"]
        assert (await asyncio.to_thread(fresh.store, "1", "+FLAGS", "(\\Seen)"))[0] == "OK"
    finally:
        await asyncio.to_thread(fresh.logout)
    assert await env.target.db.get_folder(env.guid, "INBOX") is not None
    assert await env.source.db.get_folder(env.guid, "INBOX") is None
    fresh_pop = await asyncio.to_thread(env.pop)
    try:
        assert (await asyncio.to_thread(fresh_pop.stat))[0] == 2
    finally:
        await asyncio.to_thread(fresh_pop.quit)


async def test_a_dismounted_database_ends_its_sessions(env: Env) -> None:
    client = await asyncio.to_thread(env.imap)
    pop = await asyncio.to_thread(env.pop)
    await asyncio.to_thread(client.select, "INBOX")
    del env.mounted["DB01"]  # dismounted here (or switched over to another Mailbox server)
    with pytest.raises(imaplib.IMAP4.abort, match="mailbox moved, please reconnect"):
        await asyncio.to_thread(client.noop)
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[SYS/TEMP\] Mailbox moved"):
        await asyncio.to_thread(pop.list)
    client.shutdown()
    pop.close()
