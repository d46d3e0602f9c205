"""Mailbox moves between databases (mailbox/move.py, mailbox/fence.py) on SQLite and PostgreSQL.

The mailbox keeps its folders, messages, flags, keywords, internal dates and subscriptions; the
changes made while it is copied are carried over; deliveries during the final step are turned
back and arrive once, in the new database; a delivery retried after the move is still a duplicate;
the old database refuses the mailbox afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from courriel.mailbox.errors import NoSuchMailbox
from courriel.mailbox.fence import LOCKED, MOVED, MoveFence, is_fenced
from courriel.mailbox.flags import ANSWERED, DELETED, FLAGGED, SEEN
from courriel.mailbox.move import MailboxCopy, Side, move_mailbox
from courriel.mailbox.store import MailboxDatabase
from courriel.storage.blobs import BlobStore, open_database_blobs
from tests.conftest import create_pg_database, drop_pg_database
from tests.unit.mailbox.mailbox_harness import GUID, OWNER, message, request


@dataclass
class Pair:
    source: Side
    target: Side


async def _open(name: str, url: str, base: Path, shared: BlobStore) -> Side:
    blobs = await open_database_blobs(url, base, shared)
    db = await MailboxDatabase.open(name, url, base, blobs, poll_interval=0.05)
    return Side(db, await MoveFence.open(url, base))


@pytest.fixture
async def pair(db_url: str, tmp_path: Path) -> AsyncIterator[Pair]:
    other = f"sqlite:///{tmp_path / 'target.db'}" if db_url.startswith("sqlite") else await create_pg_database()
    shared = BlobStore(tmp_path / "blobs")
    sides = Pair(await _open("DB01", db_url, tmp_path, shared), await _open("DB02", other, tmp_path, shared))
    try:
        yield sides
    finally:
        for side in (sides.source, sides.target):
            await side.fence.close()
            await side.db.close()
            await side.db.blobs.close()
        if not other.startswith("sqlite"):
            await drop_pg_database(other)


async def _put(db: MailboxDatabase, n: int, key: str, **fields: object) -> None:
    blob = await db.blobs.put(message(n) + key.encode())
    (result,) = await db.deliver_many([request(blob, key, **fields)])
    assert result.status == "delivered"


async def _contents(db: MailboxDatabase) -> dict[str, list[tuple[int, tuple[str, ...], datetime, bytes]]]:
    """Folder name → (flags, keywords, internal date, bytes) of each message, in UID order."""
    out = {}
    for folder in await db.list_folders(GUID):
        snap = await db.snapshot(folder.id)
        metas = await db.message_meta(folder.id, snap.uids, analysis=False, text=False)
        out[folder.name] = [
            (m.flags, m.keywords, m.internaldate, await db.read_message(m.digest)) for m in metas
        ]
    return out


async def test_move_keeps_everything_and_removes_the_source(pair: Pair) -> None:
    src = pair.source.db
    await src.ensure_mailbox(GUID, OWNER)
    await src.create_folder(GUID, "Projects/2026")
    await src.subscribe(GUID, "Projects/2026")
    await src.subscribe(GUID, "Junk Email", on=False)
    await _put(src, 1, "a", flags=SEEN | ANSWERED, keywords=("$Forwarded", "project"))
    await _put(src, 2, "b", internaldate=datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC))
    await _put(src, 3, "c", folder="Projects/2026", flags=FLAGGED | DELETED)
    before = await _contents(src)
    subscribed = await src.list_subscriptions(GUID)
    assert "Projects/2026" in subscribed and "Junk Email" not in subscribed
    switched: list[bool] = []
    lines: list[str] = []

    async def switch() -> None:
        switched.append(True)

    copied = await move_mailbox(
        pair.source, pair.target, GUID, OWNER, switch=switch, quota=10_000_000, progress=lines.append
    )
    assert copied == 3 and switched == [True]
    assert await _contents(pair.target.db) == before
    assert await pair.target.db.list_subscriptions(GUID) == subscribed
    assert any(line.startswith("final") for line in lines)
    with pytest.raises(NoSuchMailbox):
        await src.mailbox_usage(GUID)
    assert await pair.source.fence.state(GUID) == MOVED
    # A stale delivery to the old database is turned back, not stored (it would recreate the mailbox).
    with pytest.raises(Exception) as refused:
        await _put(src, 4, "late")
    assert is_fenced(refused.value)


async def test_changes_made_during_the_copy_are_carried_over(pair: Pair) -> None:
    src, dst = pair.source.db, pair.target.db
    await src.ensure_mailbox(GUID, OWNER)
    await dst.ensure_mailbox(GUID, OWNER)
    await src.create_folder(GUID, "Old")
    await src.create_folder(GUID, "Old/Child")
    await src.create_folder(GUID, "Gone")
    for n in range(5):
        await _put(src, n, f"k{n}")
    await _put(src, 9, "old", folder="Old")
    await _put(src, 10, "child", folder="Old/Child")
    copy = MailboxCopy(src, dst, GUID, OWNER, lambda _line: None)
    await copy.sync()
    assert await _contents(dst) == await _contents(src)
    inbox = await src.get_folder(GUID, "INBOX")
    assert inbox is not None
    uids = (await src.snapshot(inbox.id)).uids
    await src.store_flags(inbox.id, uids[:2], "add", SEEN, ["later"])
    await src.store_flags(inbox.id, [uids[4]], "add", DELETED)
    await src.expunge(inbox.id, [uids[4]])
    await _put(src, 7, "new")
    await src.rename_folder(GUID, "Old", "Renamed")
    await src.create_folder(GUID, "Old")  # the old name, now another folder
    await _put(src, 11, "new old", folder="Old")
    await src.delete_folder(GUID, "Gone")
    await src.create_folder(GUID, "Fresh")
    await _put(src, 8, "fresh", folder="Fresh")
    assert await copy.sync() > 0
    assert await _contents(dst) == await _contents(src)
    assert await copy.sync() == 0  # settled


async def test_deliveries_during_the_move_arrive_once(pair: Pair) -> None:
    src = pair.source.db
    await src.ensure_mailbox(GUID, OWNER)
    for n in range(30):
        await _put(src, n, f"before{n}")
    current = {"db": src}
    turned_back = 0
    stop = asyncio.Event()
    delivered: list[str] = []

    async def deliverer() -> None:
        """What local delivery does: the directory's database, and a retry when fenced."""
        nonlocal turned_back
        for n in range(10_000):
            if stop.is_set():
                return
            key = f"during{n}"
            for _attempt in range(1000):
                db = current["db"]
                try:
                    await _put(db, 100 + n, key)
                    break
                except Exception as exc:
                    if not is_fenced(exc):
                        raise
                    turned_back += 1
                    await asyncio.sleep(0.01)
            delivered.append(key)
            await asyncio.sleep(0.005)

    async def switch() -> None:
        for _ in range(500):  # the final step lasts until a delivery has met the fence
            if turned_back:
                break
            await asyncio.sleep(0.01)
        current["db"] = pair.target.db

    task = asyncio.create_task(deliverer())
    await move_mailbox(pair.source, pair.target, GUID, OWNER, switch=switch, quota=None, progress=lambda _l: None)
    after_move = len(delivered)
    for _ in range(500):  # a few more deliveries after the move
        if len(delivered) >= after_move + 5:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert turned_back > 0
    inbox = (await _contents(pair.target.db))["INBOX"]
    bodies = [body for _flags, _kw, _date, body in inbox]
    assert len(bodies) == len(set(bodies)) == 30 + len(delivered)
    expected = {message(n) + f"before{n}".encode() for n in range(30)}
    expected |= {message(100 + int(k[6:])) + k.encode() for k in delivered}
    assert set(bodies) == expected


async def test_delivery_keys_move_with_the_mailbox(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst = pair.source.db, pair.target.db
    await _put(src, 1, "mid:first")
    await _put(src, 2, "queue7:" + GUID)
    await src.record_delivery_keys(GUID, {"mid:ancient": 1_000_000_000})  # past the prune window
    fence_source = pair.source.fence.raise_fence

    async def deliver_then_fence(guid: str, state: str = LOCKED) -> None:
        """A delivery after the last pass, just before the fence: only the final step sees it."""
        if state == LOCKED:
            await _put(src, 3, "mid:last")
        await fence_source(guid, state)

    monkeypatch.setattr(pair.source.fence, "raise_fence", deliver_then_fence)
    recorded: dict[str, int] = {}

    async def switch() -> None:
        recorded.update(await src.delivery_keys(GUID))

    said: list[str] = []
    week = datetime.now(UTC) - timedelta(days=7)  # the prune window
    await move_mailbox(
        pair.source,
        pair.target,
        GUID,
        OWNER,
        switch=switch,
        quota=None,
        progress=said.append,
        keys_since=week,
    )
    for n, key in [(1, "mid:first"), (2, "queue7:" + GUID), (3, "mid:last")]:
        blob = await dst.blobs.put(message(n) + key.encode())
        (again,) = await dst.deliver_many([request(blob, key)])
        assert again.status == "duplicate", key
    assert len((await _contents(dst))["INBOX"]) == 3
    final = said.index("final step: holding writes to the source copy")
    assert "  1 delivery key(s) copied" in said[final:]  # "mid:last", under the fence
    fresh = {key: when for key, when in recorded.items() if key != "mid:ancient"}
    assert set(fresh) == {"mid:first", "queue7:" + GUID, "mid:last"}
    kept = await dst.delivery_keys(GUID)  # besides the move's own keys for the messages it copied
    assert {key: kept.get(key) for key in fresh} == fresh  # with their times
    assert "mid:ancient" not in kept
    assert await src.delivery_keys(GUID) == {}


async def test_a_failed_switch_leaves_the_source_in_use_and_a_rerun_completes(pair: Pair) -> None:
    src = pair.source.db
    for n in range(3):
        await _put(src, n, f"k{n}")
    before = await _contents(src)

    async def refused() -> None:
        raise RuntimeError("the directory said no")

    with pytest.raises(RuntimeError):
        await move_mailbox(pair.source, pair.target, GUID, OWNER, switch=refused, quota=None, progress=lambda _l: None)
    assert await pair.source.fence.state(GUID) is None  # lifted: the source takes mail again
    await _put(src, 3, "k3")
    # An interrupted final step (the command killed) leaves the fence up: the next attempt lifts it.
    await pair.source.fence.raise_fence(GUID)
    lines: list[str] = []
    copied = await move_mailbox(
        pair.source, pair.target, GUID, OWNER, switch=_nothing, quota=None, progress=lines.append
    )
    assert copied == 4
    assert any("interrupted" in line for line in lines) and any("earlier attempt" in line for line in lines)
    after = await _contents(pair.target.db)
    assert len(after["INBOX"]) == 4 and after["INBOX"][:3] == before["INBOX"]


async def _nothing() -> None:
    return None
