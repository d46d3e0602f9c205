"""Per-database blob stores: a directory beside a SQLite database, tables inside a PostgreSQL one.

A database's bodies must travel with it (a switchover mounts it on another server), older bodies
in the server's shared store must stay readable, and a large body is never one SQL value.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from courriel.storage.blobs import BlobRef, BlobStore, open_database_blobs
from courriel.storage.pgblobs import CHUNK, PgBlobStore, chunks
from tests.conftest import create_pg_database, drop_pg_database, postgres_available, require

BIG = bytes(range(256)) * (CHUNK // 256 * 3 + 17)  # a bit more than three chunks


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


async def test_sqlite_database_keeps_bodies_beside_its_file(tmp_path: Path) -> None:
    shared = BlobStore(tmp_path / "blobs")
    store = await open_database_blobs("sqlite:///databases/DB02.db", tmp_path, shared)
    assert store.root == tmp_path / "databases" / "DB02.blobs"
    assert store.fallback is shared
    memory = await open_database_blobs("sqlite:///:memory:", tmp_path, shared)
    assert memory is shared


async def test_older_bodies_stay_readable_through_the_shared_store(tmp_path: Path) -> None:
    shared = BlobStore(tmp_path / "blobs")
    old = await shared.put(b"delivered before databases had a store of their own")
    store = BlobStore(tmp_path / "db.blobs", fallback=shared)
    assert await store.get(old.digest) == b"delivered before databases had a store of their own"
    assert store.exists(old.digest) and not await store.has(old.digest)
    assert (await store.get_many([old.digest, "0" * 64])) == {old.digest: b"delivered before databases had a store of their own"}
    await store.discard([old.digest])  # never removes from the fallback
    assert shared.owns(old.digest)


async def test_copy_from_the_queue_store_links_the_same_file(tmp_path: Path) -> None:
    queue = BlobStore(tmp_path / "blobs")
    ref = await queue.put(b"one body, written once")
    store = BlobStore(tmp_path / "databases" / "DB01.blobs", fallback=queue)
    await store.copy_from(queue, ref)
    assert await store.has(ref.digest)
    assert store.path(ref.digest).stat().st_ino == queue.path(ref.digest).stat().st_ino
    await store.copy_from(queue, ref)  # again: nothing to do
    queue.remove(ref.digest)  # the queue forgets it; the database keeps it
    assert await store.get(ref.digest) == b"one body, written once"


async def test_postgresql_store_round_trip_in_chunks(pg_url: str, tmp_path: Path) -> None:
    store = await PgBlobStore.open(pg_url)
    try:
        ref = await store.put(BIG)
        assert ref == BlobRef(hashlib.sha256(BIG).hexdigest(), len(BIG))
        assert await store.put(BIG) == ref  # content-addressed: stored once
        async with store._engine.connect() as conn:
            rows = (await conn.execute(chunks.select().where(chunks.c.digest == ref.digest))).all()
        assert len(rows) == 4 and max(len(r.data) for r in rows) == CHUNK
        assert await store.get(ref.digest) == BIG
        # worker threads (the IMAP engine reads bodies off the loop) get the same bytes
        assert await asyncio.to_thread(store.get_sync, ref.digest) == BIG
        assert await asyncio.to_thread(store.exists, ref.digest)
        with pytest.raises(RuntimeError):
            store.get_sync(ref.digest)  # on the loop itself it would deadlock
        with pytest.raises(FileNotFoundError):
            await store.get("0" * 64)
        await store.discard([ref.digest])
        assert not await store.has(ref.digest)
    finally:
        await store.close()


async def test_postgresql_store_takes_bodies_from_files_and_reads_older_ones(pg_url: str, tmp_path: Path) -> None:
    shared = BlobStore(tmp_path / "blobs")
    old = await shared.put(b"older body, still in the server's directory")
    queued = await shared.put(BIG)
    store = await open_database_blobs(pg_url, tmp_path, shared)
    assert isinstance(store, PgBlobStore)
    try:
        assert await store.get(old.digest) == b"older body, still in the server's directory"
        await store.copy_from(shared, queued)
        shared.remove(queued.digest)
        assert await store.get(queued.digest) == BIG
        assert sorted(await store.all_digests()) == [queued.digest]
        # A second store on the same database (another server after a switchover) sees it too.
        other = await PgBlobStore.open(pg_url)
        try:
            assert await other.get(queued.digest) == BIG
        finally:
            await other.close()
    finally:
        await store.close()
