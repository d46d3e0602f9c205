"""Blob garbage collection: listing by age, race-safe deletion, and what a mailbox database keeps.

A blob goes only when it is older than the grace period and nothing references it; a write that
finds it (a new message with the same bytes, a delivery linking it) makes it young again, even
between the listing and the deletion. Mailbox side on both engines (db_url): an expunged body
goes from the database's own store, a copy in another folder keeps it, and a body an older
database still reads from the server's shared store stays there.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from courriel.mailbox.blobgc import fallback_references, sweep_database
from courriel.mailbox.flags import DELETED
from courriel.mailbox.store import MailboxDatabase
from courriel.storage.blobs import TRASH, BlobStore, open_database_blobs, sweep_unreferenced
from courriel.storage.pgblobs import PgBlobStore, blobs, chunks
from tests.conftest import create_pg_database, drop_pg_database, postgres_available, require
from tests.unit.mailbox.mailbox_harness import GUID, OWNER, message

HOUR = 3600.0


def later() -> float:
    """A cutoff an hour from now: everything stored so far counts as old."""
    return time.time() + HOUR


def just_now() -> float:
    """A cutoff a second ago (file times come from a coarse clock that may lag time.time())."""
    return time.time() - 1


def age(path: Path, seconds: float = 2 * HOUR) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


async def test_stale_lists_only_blobs_older_than_the_cutoff(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    ref = await store.put(b"a body")
    assert await store.stale(time.time() - HOUR) == []  # just written: young
    assert await store.stale(later()) == [ref]


async def test_a_blob_written_again_after_the_listing_is_kept(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    kept, gone = await store.put(b"same bytes as a new message"), await store.put(b"forgotten")
    age(store.path(kept.digest))
    age(store.path(gone.digest))
    cutoff = just_now()
    await store.put(b"same bytes as a new message")  # found, not rewritten: touched
    assert await store.collect([kept.digest, gone.digest], cutoff) == [gone]
    assert await store.get(kept.digest) == b"same bytes as a new message"
    assert not store.owns(gone.digest)
    assert [p.name for p in (store.root / "tmp").iterdir()] == []  # nothing left aside


async def test_a_body_linked_into_a_database_store_is_young(tmp_path: Path) -> None:
    queue = BlobStore(tmp_path / "blobs")
    ref = await queue.put(b"queued for two days, delivered now")
    age(queue.path(ref.digest))
    database = BlobStore(tmp_path / "DB01.blobs", fallback=queue)
    cutoff = just_now()
    await database.copy_from(queue, ref)  # a hard link: same inode, and now a fresh mtime
    assert database.path(ref.digest).stat().st_mtime >= cutoff
    assert await database.collect([ref.digest], cutoff) == []
    # The same body delivered again later finds it there: touched, not linked.
    age(database.path(ref.digest))
    cutoff = just_now()
    await database.copy_from(queue, ref)
    assert await database.collect([ref.digest], cutoff) == []


async def test_a_collector_that_died_midway_loses_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    ref = await store.put(b"renamed aside, then the process was killed")
    os.rename(store.path(ref.digest), store.root / "tmp" / f"{TRASH}{ref.digest}.999.0")
    assert await store.stale(time.time() - HOUR) == []  # the listing puts it back first
    assert await store.get(ref.digest) == b"renamed aside, then the process was killed"
    assert list((store.root / "tmp").iterdir()) == []


async def test_leftovers_of_crashed_writes_go_after_the_grace_period(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    old, young = store.root / "tmp" / "abc.1.1", store.root / "tmp" / "abc.1.2"
    old.write_bytes(b"half a body")
    young.write_bytes(b"being written")
    age(old)
    assert await store.sweep_temporary(time.time() - HOUR) == 1
    assert not old.exists() and young.exists()


async def test_sweep_keeps_referenced_and_young_blobs(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    used, unused = await store.put(b"referenced"), await store.put(b"unreferenced")

    async def references() -> set[str]:
        return {used.digest}

    young = await sweep_unreferenced(store, "test", references, time.time() - HOUR)
    assert (young.blobs, store.owns(unused.digest)) == (0, True)
    dry = await sweep_unreferenced(store, "test", references, later(), dry_run=True)
    assert (dry.blobs, dry.bytes, store.owns(unused.digest)) == (1, unused.size, True)
    done = await sweep_unreferenced(store, "test", references, later())
    assert (done.blobs, done.bytes) == (1, unused.size)
    assert store.owns(used.digest) and not store.owns(unused.digest)


@pytest.fixture
async def pg_store() -> AsyncIterator[PgBlobStore]:
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    url = await create_pg_database()
    store = await PgBlobStore.open(url)
    try:
        yield store
    finally:
        await store.close()
        await drop_pg_database(url)


async def test_postgresql_store_deletes_rows_still_old_after_the_listing(pg_store: PgBlobStore) -> None:
    kept, gone = await pg_store.put(b"x" * 600_000), await pg_store.put(b"y" * 600_000)  # 3 chunks each
    async with pg_store._engine.begin() as conn:
        await conn.execute(update(blobs).values(touched_at=time.time() - 2 * HOUR))
    cutoff = time.time() - HOUR
    assert sorted(await pg_store.stale(cutoff), key=lambda r: r.digest) == sorted([kept, gone], key=lambda r: r.digest)
    await pg_store.put(b"x" * 600_000)  # a new message with the same bytes: touched
    assert await pg_store.collect([kept.digest, gone.digest], cutoff) == [gone]
    async with pg_store._engine.connect() as conn:
        left = set((await conn.execute(select(chunks.c.digest))).scalars())
    assert left == {kept.digest}  # the deleted body's chunks went with its header
    assert await pg_store.get(kept.digest) == b"x" * 600_000
    assert await pg_store.held([kept.digest, gone.digest]) == {kept.digest}
    assert await pg_store.refresh(kept.digest) and not await pg_store.refresh(gone.digest)


# The mailbox side, on both engines.


@pytest.fixture
def shared(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
async def database(db_url: str, tmp_path: Path, shared: BlobStore) -> AsyncIterator[MailboxDatabase]:
    own = await open_database_blobs(db_url, tmp_path, shared)
    db = await MailboxDatabase.open("DB01", db_url, tmp_path, own, poll_interval=0.05)
    await db.ensure_mailbox(GUID, OWNER)
    try:
        yield db
    finally:
        await db.close()
        await own.close()


async def expunge_all(db: MailboxDatabase, folder: str) -> None:
    info = await db.get_folder(GUID, folder)
    assert info is not None
    snap = await db.snapshot(info.id)
    await db.store_flags(info.id, list(snap.uids), "add", DELETED)
    await db.expunge(info.id)


async def test_expunged_body_goes_and_a_copy_keeps_it(database: MailboxDatabase, shared: BlobStore) -> None:
    await database.append(GUID, "INBOX", message(1))
    await database.append(GUID, "INBOX", message(2))
    inbox = await database.get_folder(GUID, "INBOX")
    saved = await database.create_folder(GUID, "Saved")
    assert inbox is not None
    await database.copy(inbox.id, [1], saved.id)
    kept = (await database.message_meta(saved.id, [1]))[0].digest
    await expunge_all(database, "INBOX")

    young = await sweep_database(database, shared, time.time() - HOUR)
    assert young.blobs == 0  # both bodies were written just now
    swept = await sweep_database(database, shared, later())
    assert (swept.blobs, swept.bytes) == (1, len(message(2)))
    assert await database.blobs.held([kept]) == {kept}
    assert await database.read_message(kept) == message(1)

    await expunge_all(database, "Saved")
    assert (await sweep_database(database, shared, later())).blobs == 1
    assert await database.blobs.held([kept]) == set()


async def test_bodies_read_through_the_shared_store_stay_there(database: MailboxDatabase, shared: BlobStore) -> None:
    # A database made before it had a store of its own: its message's body is in the shared store only.
    old = await shared.put(message(7))
    await database.append(GUID, "INBOX", old)
    await database.append(GUID, "INBOX", message(8))  # this one is in the database's own store
    assert await fallback_references([database], shared) == {old.digest}

    async def references() -> set[str]:
        return await fallback_references([database], shared)

    swept = await sweep_unreferenced(shared, "shared", references, later())
    assert swept.blobs == 0 and shared.owns(old.digest)
    assert await database.read_message(old.digest) == message(7)

    await expunge_all(database, "INBOX")
    assert await fallback_references([database], shared) == set()
    assert (await sweep_unreferenced(shared, "shared", references, later())).blobs == 1
    assert not shared.owns(old.digest)
