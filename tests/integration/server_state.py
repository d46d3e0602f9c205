"""What a running test server did with the mail it was given: mailboxes, queues, tracking log.

Every SMTP assertion of the integration suites is paired with one on the resulting data: which
mailbox holds the message and how many times, what waits in the Unreachable queue, what the
tracking log says. Waiting is always polling with a bound, never a blind sleep. Also here: how a
test changes a receive connector with the `courriel` command and knows when the running server
has applied it (the change carries a unique banner; new connections show it). The server runs
several worker processes that follow the directory each on its own: a change counts as applied
once many fresh connections in a row show it (`settled`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from courriel.admin.cli.main import main as courriel_main
from courriel.mailbox.errors import NoSuchMailbox
from courriel.mailbox.store import MailboxDatabase
from courriel.org.directory import Directory
from courriel.org.model import ReceiveConnector
from courriel.storage.blobs import BlobStore
from courriel.transport.queue.inspect import list_messages
from tests.integration.mailserver import MailServer
from tests.integration.smtp_wire import RawSmtp, message

T = TypeVar("T")
OBSERVER = "127.0.0.250"  # the client address of this module's own mail: no test gives it a connector
WAIT = 15.0  # seconds: bound of every poll (a delivery takes milliseconds, a directory change ~1 s)
SETTLED = 12  # probes in a row: with 2 workers, 12 all reaching one of them is a 1-in-2048 chance


def token(label: str) -> str:
    """A unique, greppable marker for one test's message."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


def poll(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = WAIT, what: str = "") -> T:
    """Call `probe` until `done(result)`; the last result after `timeout` seconds either way."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if done(result) or time.monotonic() > deadline:
            assert done(result), f"gave up waiting {timeout:.0f} s for {what or probe}: {result!r}"[:2000]
            return result
        time.sleep(0.1)


def settled(probe: Callable[[], T], done: Callable[[T], bool], what: str, timeout: float = WAIT) -> None:
    """Poll until `done` holds for SETTLED fresh probes in a row: each worker process of the server
    follows the directory on its own (within ~1 s), and the kernel hands a new connection to any
    of them, so one probe that sees a change does not show that every worker applied it."""
    poll(lambda: all(done(probe()) for _ in range(SETTLED)), bool, timeout, what)


def cli(server: MailServer, *args: str) -> Any:
    """`courriel --config … ARGS --json`, run in this process: the command's own parser, handlers
    and output, without a second of interpreter start-up per query (tests of the command itself
    run it as a process: `server.courriel`). Returns the parsed JSON; asserts exit code 0."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = courriel_main(["--config", str(server.config_path), *args, "--json"])
    assert code == 0, f"courriel {' '.join(args)}: {err.getvalue()}"
    return json.loads(out.getvalue()) if out.getvalue().strip() else None


def run(server: MailServer, *args: str, input: str | None = None) -> str:
    """Run a `courriel` command that must succeed; returns its output."""
    result = server.courriel(*args, input=input)
    assert result.returncode == 0, f"courriel {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


# -- mailboxes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mailbox:
    database: str
    url: str
    guid: str


_MAILBOXES: dict[tuple[str, str], _Mailbox] = {}  # (config file, address) → where the mailbox lives
_BODIES: dict[str, bytes] = {}  # digest → message: blobs are content-addressed, so never stale


async def _read_inboxes(server: MailServer, addresses: list[str]) -> dict[str, list[bytes]]:
    """The Inbox messages of several mailboxes, reading each database once and each blob once."""
    config, here = server.config, str(server.config_path)
    unknown = [a for a in addresses if (here, a.lower()) not in _MAILBOXES]
    if unknown:
        async with await Directory.open(config.directory_url, config.data_dir) as directory:
            urls = {d.name: d.url for d in await directory.list_databases()}
            for address in unknown:
                r = await directory.get_recipient(address)
                assert r.database is not None and r.guid is not None, r
                _MAILBOXES[(here, address.lower())] = _Mailbox(r.database, urls[r.database], r.guid)
    boxes = {a: _MAILBOXES[(here, a.lower())] for a in addresses}
    out: dict[str, list[bytes]] = {}
    for database in {b.database for b in boxes.values()}:
        mine = {a: b for a, b in boxes.items() if b.database == database}
        url = next(iter(mine.values())).url
        db = await MailboxDatabase.open(database, url, config.data_dir, BlobStore(config.data_dir / "blobs"))
        try:
            for address, box in mine.items():
                try:
                    folder = await db.get_folder(box.guid, "INBOX")
                except NoSuchMailbox:
                    folder = None  # no mail yet: the store creates a mailbox on first delivery
                if folder is None:
                    out[address] = []
                    continue
                snapshot = await db.snapshot(folder.id)
                out[address] = []
                for meta in await db.message_meta(folder.id, list(snapshot.uids)):
                    if meta.digest not in _BODIES:
                        _BODIES[meta.digest] = await db.read_message(meta.digest)
                    out[address].append(_BODIES[meta.digest])
        finally:
            await db.close()
    return out


def found_in(server: MailServer, addresses: list[str], mark: str) -> dict[str, list[bytes]]:
    """The messages carrying `mark` in each address's Inbox, now."""
    inboxes = asyncio.run(_read_inboxes(server, addresses))
    return {a: [m for m in inboxes[a] if mark.encode() in m] for a in addresses}


def found(server: MailServer, address: str, mark: str) -> list[bytes]:
    return found_in(server, [address], mark)[address]


def delivered(server: MailServer, address: str, mark: str, expect: int = 1) -> list[bytes]:
    """Waits until `expect` messages carrying `mark` are in the Inbox; returns those there then."""
    return poll(
        lambda: found(server, address, mark), lambda ms: len(ms) >= expect, what=f"{mark} in {address}"
    )


def delivered_to_all(server: MailServer, addresses: list[str], mark: str) -> dict[str, list[bytes]]:
    """Waits until each of these Inboxes holds a message carrying `mark`."""
    return poll(
        lambda: found_in(server, addresses, mark),
        lambda by_address: all(by_address.values()),
        what=f"{mark} in {', '.join(addresses)}",
    )


def flush(server: MailServer, addresses: list[str]) -> None:
    """Send a marker message to these mailboxes and wait until each has it: whatever was
    accepted for them before it has been delivered by then."""
    marker = token("marker")
    with RawSmtp(server.port("frontend"), source=OBSERVER) as c:
        c.ehlo()
        answers = c.transaction("marker@sender.test", addresses, message(marker))
        assert answers[-1].code == 250, answers
    delivered_to_all(server, addresses, marker)


def delivered_once(server: MailServer, addresses: list[str], mark: str) -> dict[str, bytes]:
    """Each of these mailboxes holds exactly one message carrying `mark` (also after a flush)."""
    delivered_to_all(server, addresses, mark)
    flush(server, addresses)
    out = {}
    for address, copies in found_in(server, addresses, mark).items():
        assert len(copies) == 1, f"{mark}: {len(copies)} copies in {address}"
        out[address] = copies[0]
    return out


def assert_not_delivered(server: MailServer, addresses: list[str], mark: str) -> None:
    """Nothing carrying `mark` reached these mailboxes (checked after a flush)."""
    flush(server, addresses)
    for address, copies in found_in(server, addresses, mark).items():
        assert copies == [], f"{mark} was delivered to {address}"


def header_block(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")


# -- queues -----------------------------------------------------------------------------------


def unreachable_messages(server: MailServer) -> list[dict[str, Any]]:
    """What `courriel queue messages Unreachable --json` lists: the messages waiting there.
    Read in-process, as the command does, to keep the relay table fast."""
    return list(asyncio.run(list_messages(server.config, "Unreachable")))


def unreachable(server: MailServer) -> dict[str, list[str]]:
    """The Unreachable queue as identity → recipients."""
    return {row["identity"]: row["recipients"] for row in unreachable_messages(server)}


def unreachable_count(server: MailServer) -> int:
    """The message count of the Unreachable queue as the `courriel queue list --json` process
    prints it (0 when there is no such queue)."""
    result = server.courriel("queue", "list", "--json")
    assert result.returncode == 0, result.stderr
    return sum(
        q["message_count"] for q in json.loads(result.stdout) if q["identity"].endswith("\\Unreachable")
    )


# -- tracking ---------------------------------------------------------------------------------


def tracking(server: MailServer, *criteria: str) -> list[dict[str, Any]]:
    return list(cli(server, "tracking", "search", *criteria))


def tracked(server: MailServer, message_id: str, events: set[str]) -> list[dict[str, Any]]:
    """The tracking events of a message, once all of `events` are there."""
    return poll(
        lambda: tracking(server, "--message-id", message_id),
        lambda recs: events <= {r["event_id"] for r in recs},
        what=f"tracking events {sorted(events)} of {message_id}",
    )


# -- receive connectors -----------------------------------------------------------------------


def greeting(server: MailServer, port: int, source: str = "127.0.0.1") -> str:
    with RawSmtp(port, source=source) as c:
        return c.greeting.text


def _flag(value: Any) -> str:
    """A connector setting as the command's flag takes it back."""
    if value is None:
        return "$null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return ",".join(_flag(v) for v in value) if value else "$null"
    return str(value)


async def _connector(server: MailServer, name: str) -> ReceiveConnector:
    config = server.config
    async with await Directory.open(config.directory_url, config.data_dir) as directory:
        return await directory.get_receive_connector(config.name, name)


def set_connector(server: MailServer, name: str, changes: dict[str, str]) -> None:
    args = [arg for key, value in changes.items() for arg in (f"--{key}", value)]
    run(server, "receive-connector", "set", name, *args)


@contextmanager
def connector_changed(server: MailServer, name: str, port: int, **changes: str) -> Iterator[None]:
    """`courriel receive-connector set NAME --key value …` for the duration of a `with` block.

    Keys are the command's flags with `_` for `-` (max_message_size="1MB"). The change carries a
    unique banner; the block starts once a new connection on `port` shows it, i.e. once the
    running server applies the change, and ends once the old settings are back the same way.
    """
    original = asyncio.run(_connector(server, name))
    flags = {key.replace("_", "-"): value for key, value in changes.items()}
    mark = token("applied")
    set_connector(server, name, {**flags, "banner": f"220 {mark}"})
    settled(lambda: greeting(server, port), lambda text: mark in text, what=f"{name} to apply {flags}")
    try:
        yield
    finally:
        restore = {flag: _flag(getattr(original, flag.replace("-", "_"))) for flag in flags}
        set_connector(server, name, {**restore, "banner": _flag(original.banner)})
        settled(lambda: greeting(server, port), lambda text: mark not in text, what=f"{name} to be restored")
