"""A real Courriel server for integration tests: a fresh organization, a `courriel serve` process.

The server runs as a separate process (as in production, and so that tests can SIGKILL it) on
127.0.0.1 with a free port offset. The organization: accepted domain example.test, mailboxes
alice and bob (password `courriel-test`), alice's alias Alice.Smith, the group team (both), and
on PostgreSQL both the directory and the mailbox database live there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from courriel.admin.commands.setup import ServerSetup, init_server
from courriel.config import ServerConfig, load_config
from courriel.mailbox.store import MailboxDatabase
from courriel.org.directory import Directory
from courriel.storage.blobs import BlobStore, open_database_blobs
from tests.conftest import create_pg_database, drop_pg_database, postgres_available, require

PASSWORD = "courriel-test"
SMTP_PORTS = {"frontend": 25, "client": 587, "outbound_proxy": 717, "transport": 2525, "client_proxy": 465}
# Every seed port a test server may bind: SMTP, IMAP4/POP3 and HTTP front and back ends, and 1465
# (a test's extra implicit-TLS connector).
SEED_PORTS = (*SMTP_PORTS.values(), 143, 993, 110, 995, 1143, 1993, 1110, 1995, 1465, 80, 443, 81, 444)
EPHEMERAL_START = 32768  # Linux's ip_local_port_range: outgoing connections take ports from there


def free_offset(host: str = "127.0.0.1", ports: tuple[int, ...] = SEED_PORTS) -> int:
    """A port offset under which all `ports` are free now, all below the ephemeral range (there
    any outgoing connection may take one of them at any moment)."""
    span = EPHEMERAL_START - max(ports) - 10000
    for _ in range(200):
        offset = 10000 + (os.getpid() * 7919 + int(time.time() * 1000)) % span
        ok = True
        for port in ports:
            with socket.socket() as s:
                try:
                    s.bind((host, port + offset))
                except OSError:
                    ok = False
                    break
        if ok:
            return offset
        time.sleep(0.01)
    raise RuntimeError("no free port offset")


def distinct_offsets() -> tuple[int, int]:
    """Two free offsets whose seed ports do not overlap: two servers on 127.0.0.1."""
    first = free_offset()
    for _ in range(100):
        second = free_offset()
        if not {p + first for p in SEED_PORTS} & {p + second for p in SEED_PORTS}:
            return first, second
        time.sleep(0.01)
    raise RuntimeError("no second port offset")


@dataclass
class MailServer:
    config_path: Path
    offset: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    # (host, port) pairs that say the server is up; default: its three all-in-one SMTP ports
    wait_for: tuple[tuple[str, int], ...] = ()
    log_path: Path = field(init=False)
    restarts: int = 0

    def __post_init__(self) -> None:
        self.log_path = self.config_path.parent / "server.log"

    @property
    def config(self) -> ServerConfig:
        return load_config(str(self.config_path))

    def port(self, name: str) -> int:
        return SMTP_PORTS[name] + self.offset

    def start(self, timeout: float = 30.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "courriel", "--config", str(self.config_path), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            ready = self.wait_for or tuple((self.host, self.port(n)) for n in ("frontend", "client", "transport"))
            if all(_listening(host, port) for host, port in ready):
                return
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def courriel(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the `courriel` command against this server's config."""
        return subprocess.run(
            [sys.executable, "-m", "courriel", "--config", str(self.config_path), *args],
            capture_output=True, text=True, input=input, timeout=120,
        )

    def inbox(self, address: str, timeout: float = 10.0, expect: int | None = None) -> list[bytes]:
        """The messages in a mailbox's Inbox (waits until `expect` are there, when given)."""
        deadline = time.monotonic() + timeout
        while True:
            found = asyncio.run(read_inbox(self.config, address))
            if expect is None or len(found) >= expect or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_for(check, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """Poll `check()` until it returns a true value (bounded); the last error is reported."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the server may not have followed the directory yet
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


async def read_inbox(config: ServerConfig, address: str) -> list[bytes]:
    directory = await Directory.open(config.directory_url, config.data_dir)
    try:
        recipient = await directory.get_recipient(address)
        db_info = next(d for d in await directory.list_databases() if d.name == recipient.database)
    finally:
        await directory.close()
    assert recipient.guid is not None
    blobs = await open_database_blobs(db_info.url, config.data_dir, BlobStore(config.data_dir / "blobs"))
    db = await MailboxDatabase.open(db_info.name, db_info.url, config.data_dir, blobs)
    try:
        folder = await db.get_folder(recipient.guid, "INBOX")
        if folder is None:
            return []
        snap = await db.snapshot(folder.id)
        metas = await db.message_meta(folder.id, list(snap.uids))
        return [await db.read_message(m.digest) for m in metas]
    except Exception as exc:
        if type(exc).__name__ == "NoSuchMailbox":
            return []
        raise
    finally:
        await db.close()
        await blobs.close()


async def create_organization(root: Path, *, directory_url: str | None, mailbox_db_url: str | None, offset: int) -> Path:
    """`courriel init` + the test recipients; returns the server config path."""
    config_path = root / "courriel.toml"
    setup = ServerSetup(
        config_path=config_path,
        server="mx1",
        fqdn="mx1.example.test",
        listen=("127.0.0.1",),
        port_offset=offset,
        directory_url=directory_url,
    )
    report = await init_server(setup, organization="Courriel Test", domain="example.test")
    config = report.config
    directory = await Directory.open(config.directory_url, config.data_dir)
    try:
        database = None
        if mailbox_db_url is not None:
            database = "PG01"
            await directory.new_database(database, mailbox_db_url, config.name)
        await directory.new_mailbox("alice@example.test", "Alice", PASSWORD, database, addresses=("Alice.Smith@example.test",))
        await directory.new_mailbox("bob@example.test", "Bob", PASSWORD, database)
        await directory.new_group("team@example.test", "Team", ["alice@example.test", "bob@example.test"])
    finally:
        await directory.close()
    return config_path


def no_verify_tls() -> ssl.SSLContext:
    """A client context that accepts the test server's own self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@contextlib.contextmanager
def engine_databases(engine: str, count: int = 2) -> Iterator[list[str]]:
    """`count` fresh PostgreSQL databases for the "postgresql" engine (dropped afterwards); none,
    so SQLite files, for "sqlite"."""
    urls: list[str] = []
    if engine == "postgresql":
        require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
        urls = [asyncio.run(create_pg_database()) for _ in range(count)]
    try:
        yield urls
    finally:
        for url in urls:
            asyncio.run(drop_pg_database(url))


def organization_server(
    root: Path, urls: list[str], *, offset: int | None = None, workers: int = 1, wait_ports: tuple[int, ...] = ()
) -> MailServer:
    """A fresh organization (`create_organization`) with its directory and mailbox database at
    `urls[0]` and `urls[1]`, SQLite files without them; the server is not started. `wait_ports`:
    the 127.0.0.1 ports that say it is up, instead of the SMTP ones."""
    offset = free_offset() if offset is None else offset
    config_path = asyncio.run(
        create_organization(
            root, directory_url=urls[0] if urls else None, mailbox_db_url=urls[1] if urls else None, offset=offset
        )
    )
    if workers != 1:
        config_path.write_text(config_path.read_text().replace("[server]", f"[server]\nworkers = {workers}", 1))
    return MailServer(config_path, offset, wait_for=tuple(("127.0.0.1", p + offset) for p in wait_ports))
