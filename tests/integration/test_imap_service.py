"""The IMAP4 back end on loopback sockets over a real mailbox database (SQLite and PostgreSQL).

Clients: Python's imaplib and the `imapclient` package (blocking, so in threads) and a raw line
client for transcripts. Covers STARTTLS and implicit TLS with SecureLogin, the usual session of a
mail client (LIST, SELECT, FETCH, SEARCH, STORE, COPY, MOVE, APPEND, EXPUNGE) checked against
the store, two sessions seeing each other's changes through NOOP and IDLE (a delivery reaches
IDLE within a second), a CONDSTORE/QRESYNC resynchronisation, the login policy (ImapEnabled,
Set-ImapSettings -Enabled, MaxConnectionsPerUser, throttling, timeouts), the STARTTLS injection
defence, a fuzz pass over the socket, and stopping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import imaplib
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from courriel.mailbox.store import MailboxDatabase
from courriel.org.cache import DirectoryCache
from courriel.org.directory import Directory
from courriel.org.model import ProtocolSettings, Recipient
from courriel.security.throttle import LoginThrottle
from courriel.services.imap import ImapService
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
ALICE = "alice@example.test"


@dataclass
class Env:
    directory: Directory
    cache: DirectoryCache
    store: MailboxDatabase
    service: ImapService
    tls: Tls
    alice: Recipient
    stls_port: int
    tls_port: int
    overrides: dict[str, Any]  # settings below the directory's bounds, for tests only
    db_url: str
    tmp_path: Path

    async def settings(self, **changes: object) -> None:
        await self.directory.set_protocol_settings("imap", **changes)
        await refresh(self.cache)

    async def line_client(self, *, login: bool = True) -> IMAPLines:
        client = IMAPLines(await LineClient.connect(HOST, self.tls_port, self.tls.client))
        assert (await client.lines.line()).startswith("* OK [CAPABILITY ")
        if login:
            out = await client.run(f"AUTHENTICATE PLAIN {plain(ALICE, PASSWORD)}")
            assert out[-1].startswith("OK [CAPABILITY "), out
        return client

    async def inbox(self) -> list[int]:
        assert self.alice.guid is not None
        folder = await self.store.get_folder(self.alice.guid, "INBOX")
        assert folder is not None
        return (await self.store.snapshot(folder.id)).uids


class IMAPLines:
    """Send a tagged command, read until its completion; literals are kept inline."""

    def __init__(self, lines: LineClient) -> None:
        self.lines = lines
        self.n = 0

    async def run(self, command: str) -> list[str]:
        self.n += 1
        tag = f"t{self.n}"
        await self.lines.send(f"{tag} {command}\r\n")
        out: list[str] = []
        while True:
            line = await self.lines.line()
            assert line, out
            if line.startswith(tag + " "):
                out.append(line[len(tag) + 1 :].rstrip("\r\n"))
                return out
            out.append(line.rstrip("\r\n"))

    async def close(self) -> None:
        self.lines.writer.close()


@pytest.fixture
async def env(db_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    directory = await open_directory(tmp_path)
    cache = DirectoryCache(directory)
    await cache.load()
    store = await MailboxDatabase.open("DB01", db_url, tmp_path, BlobStore(tmp_path / "blobs"))
    tls = make_tls(tmp_path / "tls")
    overrides: dict[str, Any] = {}

    def settings() -> ProtocolSettings:
        return dataclasses.replace(cache.snapshot.imap_settings, **overrides)

    service = ImapService(
        databases={"DB01": store}.get,
        directory=lambda: cache.snapshot,
        settings=settings,
        tls=tls.server,
        throttle=LoginThrottle(max_failures=3, base_delay=0.0, max_delay=0.0),
        server_name="MBX1",
        fqdn="mbx1.example.test",
        poll_interval=0.5,
    )
    stls_port = await service.start_listener(HOST, 0, implicit_tls=False)
    tls_port = await service.start_listener(HOST, 0, implicit_tls=True)
    alice = cache.snapshot.recipient(ALICE)
    assert alice is not None
    try:
        yield Env(
            directory, cache, store, service, tls, alice, stls_port, tls_port, overrides, db_url, tmp_path
        )
    finally:
        await service.stop(grace=1.0)
        await store.close()
        await directory.close()


def email(n: int, body: str = "") -> bytes:
    return message(n, body)


# ---- a mail client's session -------------------------------------------------------------------


def imaplib_session(env: Env) -> dict[str, Any]:
    imap = imaplib.IMAP4(HOST, env.stls_port, timeout=10)
    try:
        result: dict[str, Any] = {"caps_before": imap.capabilities}
        try:
            imap.login(ALICE, PASSWORD)
            result["plaintext_login"] = "accepted"
        except imaplib.IMAP4.error as exc:
            result["plaintext_login"] = str(exc)
        imap.starttls(env.tls.client)
        result["caps_after"] = imap.capabilities
        imap.login(ALICE, PASSWORD)
        imap.create("Archive")
        result["list"] = imap.list()[1]
        result["select"] = list(imap.select("INBOX")[1])
        result["fetch"] = imap.fetch("1:*", "(UID FLAGS RFC822.SIZE ENVELOPE)")[1]
        result["body"] = imap.fetch("2", "(BODY.PEEK[TEXT])")[1]
        result["search"] = imap.search(None, "TEXT", "orange")[1]
        result["uid_search"] = imap.uid("SEARCH", "SUBJECT", '"message 3"')[1]
        imap.store("1", "+FLAGS", "(\\Flagged $Important)")
        result["copy"] = imap.uid("COPY", "1", "Archive")[0], imap.response("COPYUID")[1]
        result["move"] = imap.uid("MOVE", "2", "Archive")
        imap.store("1", "+FLAGS", "(\\Deleted)")
        result["expunge"] = imap.expunge()[1]
        result["append"] = imap.append("INBOX", "(\\Seen)", None, email(9))
        result["after"] = imap.fetch("1:*", "(UID FLAGS)")[1]
        result["status"] = imap.status("Archive", "(MESSAGES UIDNEXT UNSEEN)")[1]
        return result
    finally:
        imap.logout()


async def test_imaplib_session_over_starttls(env: Env) -> None:
    for n in (1, 2, 3):
        await deliver(env.store, env.alice, email(n, "An orange a day.\r\n" if n == 2 else ""), f"k{n}")
    r = await asyncio.to_thread(imaplib_session, env)
    # SecureLogin: no credentials before TLS.
    assert "STARTTLS" in r["caps_before"] and "LOGINDISABLED" in r["caps_before"]
    assert "PRIVACYREQUIRED" in r["plaintext_login"]
    assert "AUTH=PLAIN" in r["caps_after"] and "STARTTLS" not in r["caps_after"]
    assert b'(\\HasNoChildren \\Sent) "/" "Sent Items"' in r["list"]
    assert b'(\\HasNoChildren) "/" Archive' in r["list"]
    assert r["select"] == [b"3"]
    assert r["fetch"][0].startswith(
        b'1 (UID 1 FLAGS () RFC822.SIZE %d ENVELOPE (NIL "message 1"' % len(email(1))
    )
    assert r["body"][0][1] == b"An orange a day.\r\n"
    assert r["search"] == [b"2"] and r["uid_search"] == [b"3"]
    assert r["copy"][0] == "OK" and re.fullmatch(rb"\d+ 1 1", r["copy"][1][0])
    assert r["move"][0] == "OK"
    assert r["expunge"] == [b"2", b"1"]  # imaplib collects MOVE's EXPUNGE with EXPUNGE's
    assert re.match(rb"\[APPENDUID \d+ 4\]", r["append"][1][0])
    assert r["after"] == [b"1 (UID 3 FLAGS ())", b"2 (UID 4 FLAGS (\\Seen \\Recent))"]  # new to this session
    assert r["status"] == [b"Archive (MESSAGES 2 UIDNEXT 3 UNSEEN 2)"]
    # The store agrees.
    assert await env.inbox() == [3, 4]
    assert env.alice.guid is not None
    archive = await env.store.get_folder(env.alice.guid, "Archive")
    assert archive is not None
    metas = await env.store.message_meta(archive.id, [1, 2])
    assert metas[0].keywords == ("$Important",) and metas[0].flags == 4  # copied before \Deleted was set


def imapclient_session(env: Env) -> dict[str, Any]:
    with IMAPClient(HOST, env.tls_port, ssl=True, ssl_context=env.tls.client, timeout=10) as client:
        client.login(ALICE, PASSWORD)
        result: dict[str, Any] = {"caps": client.capabilities()}
        result["folders"] = [f[2] for f in client.list_folders()]
        client.create_folder("Projects/Été")
        result["created"] = client.folder_exists("Projects/Été")
        client.select_folder("INBOX")
        result["fetch"] = client.fetch([1, 2], ["ENVELOPE", "BODYSTRUCTURE", "INTERNALDATE", "FLAGS"])
        result["search"] = client.search(["UNSEEN", "BODY", "kiwi"])
        client.add_flags([1], [b"\\Seen"])
        result["moved"] = client.move([2], "Projects/Été")
        result["status"] = client.folder_status("Projects/Été", ["MESSAGES", "UIDNEXT"])
        return result


async def test_imapclient_session_over_tls(env: Env) -> None:
    await deliver(env.store, env.alice, email(1, "A kiwi.\r\n"), "k1")
    await deliver(env.store, env.alice, email(2), "k2")
    r = await asyncio.to_thread(imapclient_session, env)
    assert b"IDLE" in r["caps"] and b"MOVE" in r["caps"] and b"CONDSTORE" in r["caps"]
    assert "INBOX" in r["folders"] and "Deleted Items" in r["folders"]
    assert r["created"]
    envelope = r["fetch"][1][b"ENVELOPE"]
    assert envelope.subject == b"message 1" and envelope.from_[0].mailbox == b"sender"
    assert r["fetch"][1][b"BODYSTRUCTURE"][0] == b"text"
    assert r["search"] == [1]
    assert r["status"] == {b"MESSAGES": 1, b"UIDNEXT": 2}
    assert await env.inbox() == [1]


async def test_folder_commands_and_refusals_from_the_store(env: Env) -> None:
    c = await env.line_client()
    assert await c.run("CREATE Work/2026") == ["OK CREATE completed"]
    listed = await c.run('LIST "" "Work*"')
    assert listed == [
        '* LIST (\\HasChildren) "/" Work',
        '* LIST (\\HasNoChildren) "/" Work/2026',
        "OK LIST completed",
    ]
    assert (await c.run("CREATE Work"))[-1].startswith("NO [ALREADYEXISTS]")
    assert (await c.run('DELETE "Sent Items"'))[-1].startswith("NO [CANNOT]")
    assert (await c.run("CREATE Everything (USE (\\All))"))[-1].startswith("NO [USEATTR]")
    assert await c.run("CREATE Kept (USE (\\Archive))") == ["OK CREATE completed"]
    assert (await c.run('LIST (SPECIAL-USE) "" "K*"'))[0] == '* LIST (\\HasNoChildren \\Archive) "/" Kept'
    assert await c.run("RENAME Work Job") == ["OK RENAME completed"]
    assert (await c.run("STATUS Work (MESSAGES)"))[-1].startswith("NO [NONEXISTENT]")
    assert (await c.run("APPEND Nope {2+}\r\nhi"))[-1].startswith("NO [TRYCREATE]")
    many = " ".join(f"$k{n}" for n in range(70))
    await c.run("APPEND INBOX {2+}\r\nhi")
    await c.run("SELECT INBOX")
    assert (await c.run(f"STORE 1 +FLAGS ({many})"))[-1].startswith("NO [LIMIT]")
    assert await c.run("SEARCH LARGER 1 SINCE 1-Jan-2020 NOT SMALLER 2") == [
        "* SEARCH 1",
        "OK SEARCH completed",
    ]
    await c.close()


def test_flag_bits_agree_with_the_store() -> None:
    from courriel.mailbox import flags as store_flags
    from courriel.proto.imap import backend

    assert [backend.SEEN, backend.ANSWERED, backend.FLAGGED, backend.DELETED, backend.DRAFT] == [
        store_flags.SEEN,
        store_flags.ANSWERED,
        store_flags.FLAGGED,
        store_flags.DELETED,
        store_flags.DRAFT,
    ]


# ---- live updates ----------------------------------------------------------------------------------


def idle_until_exists(env: Env, started: Any, delivered: Any) -> tuple[list[Any], float]:
    with IMAPClient(HOST, env.tls_port, ssl=True, ssl_context=env.tls.client, timeout=10) as client:
        client.login(ALICE, PASSWORD)
        client.select_folder("INBOX")
        client.idle()
        started.set()
        delivered.wait(10)
        t0 = time.monotonic()
        responses: list[Any] = []
        while not any(r[1] == b"EXISTS" for r in responses) and time.monotonic() - t0 < 5:
            responses += client.idle_check(timeout=1)
        elapsed = time.monotonic() - t0
        client.idle_done()
        return responses, elapsed


async def test_delivery_reaches_idle_within_a_second(env: Env) -> None:
    import threading

    started, delivered = threading.Event(), threading.Event()
    task = asyncio.create_task(asyncio.to_thread(idle_until_exists, env, started, delivered))
    assert await asyncio.to_thread(started.wait, 10)
    await asyncio.sleep(0.1)
    await deliver(env.store, env.alice, email(1), "k1")
    delivered.set()
    responses, elapsed = await task
    assert (1, b"EXISTS") in responses
    assert elapsed < 1.0  # from the end of the delivery to the client reading EXISTS


async def test_delivery_by_another_process_reaches_idle_by_polling(env: Env) -> None:
    """Another worker's local delivery writes through its own MailboxDatabase: no in-process
    notification, the IDLE poll (every 0.5 s here) finds it."""
    other = await MailboxDatabase.open("DB01", env.db_url, env.tmp_path, BlobStore(env.tmp_path / "blobs"))
    try:
        c = await env.line_client()
        await c.run("SELECT INBOX")
        await c.lines.send("i1 IDLE\r\n")
        assert await c.lines.line() == "+ idling\r\n"
        await deliver(other, env.alice, email(1), "k1")
        t0 = time.monotonic()
        assert await c.lines.line() == "* 1 EXISTS\r\n"
        assert time.monotonic() - t0 < 1.5
        await c.close()
    finally:
        await other.close()


async def test_two_sessions_see_each_others_changes(env: Env) -> None:
    for n in (1, 2, 3):
        await deliver(env.store, env.alice, email(n), f"k{n}")
    a, b = await env.line_client(), await env.line_client()
    await a.run("SELECT INBOX")
    await b.run("SELECT INBOX")
    await b.run("STORE 2 +FLAGS.SILENT (\\Seen)")
    assert await a.run("NOOP") == ["* 2 FETCH (UID 2 FLAGS (\\Seen))", "OK NOOP completed"]
    await b.run("STORE 1 +FLAGS.SILENT (\\Deleted)")
    await b.run("EXPUNGE")
    await deliver(env.store, env.alice, email(4), "k4")
    assert await a.run("NOOP") == ["* 1 EXPUNGE", "* 3 EXISTS", "* 1 RECENT", "OK NOOP completed"]
    await a.lines.send("i1 IDLE\r\n")
    assert await a.lines.line() == "+ idling\r\n"
    await b.run("NOOP")  # b learns of message 4 (its sequence number 3)
    await b.run("STORE 3 +FLAGS.SILENT (\\Flagged)")
    assert await a.lines.line() == "* 3 FETCH (UID 4 FLAGS (\\Flagged \\Recent))\r\n"
    await a.lines.send("DONE\r\n")
    assert await a.lines.line() == "i1 OK IDLE terminated\r\n"
    await a.close()
    await b.close()


async def test_condstore_and_qresync_resynchronisation(env: Env) -> None:
    for n in (1, 2, 3, 4):
        await deliver(env.store, env.alice, email(n), f"k{n}")
    a = await env.line_client()
    assert await a.run("ENABLE QRESYNC") == ["* ENABLED QRESYNC", "OK ENABLE completed"]
    selected = await a.run("SELECT INBOX")
    validity = int(next(m.group(1) for s in selected if (m := re.search(r"UIDVALIDITY (\d+)", s))))
    modseq = int(next(m.group(1) for s in selected if (m := re.search(r"HIGHESTMODSEQ (\d+)", s))))
    await a.close()
    b = await env.line_client()
    await b.run("SELECT INBOX")
    await b.run("UID STORE 2 +FLAGS.SILENT (\\Answered)")
    await b.run("UID STORE 3 +FLAGS.SILENT (\\Deleted)")
    await b.run("UID EXPUNGE 3")
    await b.close()
    c = await env.line_client()
    await c.run("ENABLE QRESYNC")
    out = await c.run(f"SELECT INBOX (QRESYNC ({validity} {modseq} 1:4))")
    assert "* VANISHED (EARLIER) 3" in out
    assert any(re.fullmatch(r"\* 2 FETCH \(UID 2 FLAGS \(\\Answered\) MODSEQ \(\d+\)\)", s) for s in out), out
    out = await c.run(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert out[0] == "* VANISHED (EARLIER) 3" and out[-1] == "OK FETCH completed"
    await c.close()


# ---- the login policy ------------------------------------------------------------------------------


async def test_refused_logins(env: Env) -> None:
    await env.directory.set_mailbox("bob@example.test", imap_enabled=False)
    await refresh(env.cache)
    c = await env.line_client(login=False)
    for user, password in (("bob@example.test", PASSWORD), ("nobody@example.test", PASSWORD)):
        out = await c.run(f"LOGIN {user} {password}")
        assert out == ["NO [AUTHENTICATIONFAILED] Authentication failed"]
    # The third failure on one connection ends it (the BYE follows the tagged NO).
    assert await c.run(f"LOGIN {ALICE} wrong") == ["NO [AUTHENTICATIONFAILED] Authentication failed"]
    assert await c.lines.line() == "* BYE Too many failed login attempts\r\n"
    # The throttle now blocks alice from this address even with the right password.
    d = await env.line_client(login=False)
    assert await d.run(f"LOGIN {ALICE} {PASSWORD}") == ["NO [AUTHENTICATIONFAILED] Authentication failed"]


async def test_disabled_protocol_and_connection_limits(env: Env) -> None:
    await env.settings(max_connections_per_user=1)
    a = await env.line_client()
    b = await env.line_client(login=False)
    assert await b.run(f"LOGIN {ALICE} {PASSWORD}") == ["NO [LIMIT] Too many connections for this user"]
    await a.run("LOGOUT")
    await asyncio.sleep(0.1)
    assert (await b.run(f"LOGIN {ALICE} {PASSWORD}"))[-1].startswith("OK")
    await env.settings(enabled=False)
    c = await LineClient.connect(HOST, env.tls_port, env.tls.client)
    assert await c.line() == "* BYE IMAP4 is not enabled on this server\r\n"


async def test_plaintext_login_type_and_timeouts(env: Env) -> None:
    from courriel.org.model import LoginType

    await env.settings(login_type=LoginType.PLAIN_TEXT_LOGIN)
    env.overrides["pre_authenticated_connection_timeout"] = 0.3
    c = await LineClient.connect(HOST, env.stls_port)
    greeting = await c.line()
    assert "AUTH=PLAIN" in greeting and "LOGINDISABLED" not in greeting
    assert await c.line() == "* BYE Disconnected for inactivity\r\n"


# ---- robustness ------------------------------------------------------------------------------------


async def test_starttls_drops_pipelined_plaintext(env: Env) -> None:
    c = await LineClient.connect(HOST, env.stls_port)
    await c.line()
    await c.send(f"a1 STARTTLS\r\na2 LOGIN {ALICE} {PASSWORD}\r\n")
    assert await c.line() == "a1 OK Begin TLS negotiation now\r\n"
    await c.starttls(env.tls.client, HOST)
    await c.send("a3 NOOP\r\n")
    assert await c.line() == "a3 OK NOOP completed\r\n"  # a2 never ran


async def test_fuzz_over_the_socket(env: Env) -> None:
    await deliver(env.store, env.alice, email(1), "k1")
    words = ["FETCH", "UID", "1:*", "(", ")", "BODY[", "]", "SEARCH", "OR", "NOT", "STORE", "+FLAGS", "\\Seen",
             "LIST", '""', "*", "SELECT", "INBOX", "COPY", "Archive", "APPEND", "STATUS", "(MESSAGES)", "$", "<0.9>",
             "CREATE", "RENAME", "ENABLE", "QRESYNC", "\x00", "\x7f", "é", "~", "%", "&", "EXPUNGE", "CLOSE"]  # fmt: skip
    rnd = random.Random(7)
    c = await env.line_client()
    await c.run("SELECT INBOX")
    for n in range(200):
        body = " ".join(rnd.choice(words) for _ in range(rnd.randint(1, 7)))
        if re.match(r"(IDLE|AUTHENTICATE|LOGOUT|STARTTLS)\b", body, re.IGNORECASE):
            continue
        out = await c.run(body)
        assert re.match(r"(OK|NO|BAD) ", out[-1]), (body, out)
        if n % 10 == 9:
            # 20 bad commands in a row end a session; a good one in between keeps this one.
            assert (await c.run("NOOP"))[-1] == "OK NOOP completed"
    assert (await c.run("NOOP"))[-1] == "OK NOOP completed"
    await c.close()


async def test_random_bytes_never_crash_a_session(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    rnd = random.Random(11)
    pieces = [
        b"\r\n",
        b"{5}\r\n",
        b"{3+}\r\n",
        b"~{2}\r\n",
        b" ",
        b"(",
        b")",
        b'"',
        b"\\",
        b"\x00",
        b"\xff",
        b"*",
    ]
    with caplog.at_level("ERROR", logger="courriel"):
        for _ in range(20):
            c = await env.line_client()
            for _ in range(rnd.randint(1, 6)):
                noise = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 200)))
                await c.lines.send(noise + rnd.choice(pieces) + noise[:20])
            await c.lines.send(b"\r\nz1 NOOP\r\n")
            await c.close()
        probe = await env.line_client()
        assert (await probe.run("NOOP"))[-1] == "OK NOOP completed"
    assert not caplog.records, caplog.text


async def test_stop_says_goodbye(env: Env) -> None:
    c = await env.line_client()
    await env.service.stop(grace=1.0)
    assert await c.lines.line() == "* BYE Server shutting down\r\n"
