"""Message bytes inside a PostgreSQL mailbox database, so that the database is self-contained.

A PostgreSQL mailbox database can be mounted on any Mailbox server that reaches it (a switchover,
`courriel database move`): its bodies must travel with it, not stay in one server's directory.
They live in two tables of the database itself, content-addressed like the file store
(storage/blobs.py) and behind the same calls. A body is split into CHUNK-sized rows and read back
a few rows per query: asyncpg materialises each bytea value whole, so no single value, and no
single result, is ever the size of a large message (python-ecosystem.md §6; DESIGN.md §3). A put
is durable when its transaction commits (the header row goes in last: a body without a header is
not there yet). Bodies written before the database had these tables are read through `fallback`.

For garbage collection a header row carries `touched_at`, the Unix time of the last write that
stored or found the body (the file store uses the mtime). `collect` deletes with the age test in
the DELETE itself: a concurrent touch holds the row lock, and PostgreSQL re-checks the test after
it, so a body touched just before it is referenced again is never deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    delete,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from courriel.storage.blobs import BlobRef, BlobStore
from courriel.storage.engine import open_engine
from courriel.storage.migrations import Step, create_tables, migrate

COMPONENT = "blobs"
CHUNK = 256 * 1024  # bytes per row
ROWS_PER_QUERY = 8  # rows per read or insert: at most 2 MiB of a body in flight at a time
POOL_SIZE = 4
T = TypeVar("T")
log = logging.getLogger(__name__)

metadata = MetaData()
blobs = Table(
    "blb_blobs",
    metadata,
    Column("digest", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("chunks", Integer, nullable=False),
    # Added by migration step 2: the last write that stored or found this body (Unix time).
    Column("touched_at", Float, nullable=False, server_default=text("0")),
)
chunks = Table(
    "blb_chunks",
    metadata,
    Column("digest", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("digest", "seq", name="blb_chunks_pk"),
)


async def _add_touched_at(conn: AsyncConnection) -> None:
    """Step 2. Bodies stored before it count as written now: collectable one grace period later."""

    def run(sync: Connection) -> None:
        if "touched_at" not in {c["name"] for c in inspect(sync).get_columns("blb_blobs")}:
            sync.execute(text("ALTER TABLE blb_blobs ADD COLUMN touched_at DOUBLE PRECISION NOT NULL DEFAULT 0"))
        sync.execute(update(blobs).where(blobs.c.touched_at == 0).values(touched_at=time.time()))

    await conn.run_sync(run)


STEPS: list[Step] = [create_tables(metadata), _add_touched_at]
DELETE_BATCH = 500  # digests per DELETE


def _pieces(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        yield bytes(view[start : start + CHUNK])


def _take(source: Iterator[bytes]) -> list[bytes]:
    return [piece for _, piece in zip(range(ROWS_PER_QUERY), source, strict=False)]


def _file_pieces(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while piece := f.read(CHUNK):
            yield piece


class PgBlobStore(BlobStore):
    """A BlobStore whose bytes live in PostgreSQL tables (`blb_blobs`, `blb_chunks`).

    Used from the event loop it was opened on; the synchronous calls (`get_sync`, `exists` …)
    exist for worker threads and hand the work to that loop.
    """

    def __init__(self, engine: AsyncEngine, loop: asyncio.AbstractEventLoop, *, fallback: BlobStore | None) -> None:
        # Deliberately not BlobStore.__init__: there is no directory.
        self.fallback = fallback
        self._engine = engine
        self._loop = loop

    @classmethod
    async def open(cls, url: str, *, fallback: BlobStore | None = None) -> PgBlobStore:
        engine = open_engine(url, pool_size=POOL_SIZE)
        try:
            await migrate(engine, COMPONENT, STEPS)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, asyncio.get_running_loop(), fallback=fallback)

    async def close(self) -> None:
        await self._engine.dispose()

    def path(self, digest: str) -> Path:
        raise TypeError("bodies in a PostgreSQL mailbox database have no file path")

    def locate(self, digest: str) -> Path | None:
        return self.fallback.locate(digest) if self.fallback is not None else None

    # writing

    async def _insert(self, digest: str, pieces: Iterator[bytes], *, from_disk: bool = False) -> None:
        """Insert a body's chunks then its header, in one transaction."""
        size = count = 0
        async with self._engine.begin() as conn:
            if await self._touch(conn, digest):
                return
            while True:
                if from_disk:  # file reads must not block the loop
                    batch = await asyncio.to_thread(_take, pieces)
                else:
                    batch = _take(pieces)
                if not batch:
                    break
                rows = [{"digest": digest, "seq": count + i, "data": piece} for i, piece in enumerate(batch)]
                await conn.execute(insert(chunks).on_conflict_do_nothing(), rows)
                count += len(batch)
                size += sum(len(p) for p in batch)
            await conn.execute(
                insert(blobs)
                .values(digest=digest, size=size, chunks=count, touched_at=time.time())
                .on_conflict_do_nothing()
            )

    async def put(self, data: bytes) -> BlobRef:
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        await self._insert(digest, _pieces(data))
        return BlobRef(digest, len(data))

    def put_sync(self, data: bytes) -> BlobRef:
        return self._blocking(self.put, data)

    async def copy_from(self, source: BlobStore, ref: BlobRef) -> None:
        """Take `ref` from `source`: streamed a chunk at a time from a file, else as one body."""
        if source is self or await self.refresh(ref.digest):
            return
        path = source.locate(ref.digest)
        if path is not None:
            await self._insert(ref.digest, _file_pieces(path), from_disk=True)
            return
        data = await source.get(ref.digest)
        await self._insert(ref.digest, _pieces(data))

    # reading

    @staticmethod
    async def _known(conn: AsyncConnection, digest: str) -> Any:
        return (await conn.execute(select(blobs.c.size, blobs.c.chunks).where(blobs.c.digest == digest))).first()

    async def get(self, digest: str) -> bytes:
        async with self._engine.connect() as conn:
            header = await self._known(conn, digest)
            if header is None:
                if self.fallback is None:
                    raise FileNotFoundError(f"no blob {digest} in this database")
                return await self.fallback.get(digest)
            body = bytearray()
            for first in range(0, header.chunks, ROWS_PER_QUERY):
                part = await conn.execute(
                    select(chunks.c.data)
                    .where(chunks.c.digest == digest, chunks.c.seq >= first, chunks.c.seq < first + ROWS_PER_QUERY)
                    .order_by(chunks.c.seq)
                )
                for (piece,) in part:
                    body += piece
        if len(body) != header.size:
            raise OSError(f"blob {digest} is damaged: {len(body)} bytes of {header.size}")
        return bytes(body)

    def get_sync(self, digest: str) -> bytes:
        return self._blocking(self.get, digest)

    async def get_many(self, digests: Iterable[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for digest in dict.fromkeys(digests):
            try:
                found[digest] = await self.get(digest)
            except OSError:
                log.error("message bytes %s are missing from the database's blob tables", digest)
        return found

    async def has(self, digest: str) -> bool:
        async with self._engine.connect() as conn:
            return await self._known(conn, digest) is not None

    def owns(self, digest: str) -> bool:
        return self._blocking(self.has, digest)

    def exists(self, digest: str) -> bool:
        return self.owns(digest) or (self.fallback is not None and self.fallback.exists(digest))

    # garbage collection

    @staticmethod
    async def _touch(conn: AsyncConnection, digest: str) -> bool:
        """Mark a stored body as just written; False if there is none (the row lock orders this
        against a concurrent `collect`)."""
        result = await conn.execute(
            update(blobs).where(blobs.c.digest == digest).values(touched_at=time.time()).returning(blobs.c.digest)
        )
        return result.first() is not None

    async def refresh(self, digest: str) -> bool:
        async with self._engine.begin() as conn:
            return await self._touch(conn, digest)

    async def held(self, digests: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(digests))
        found: set[str] = set()
        async with self._engine.connect() as conn:
            for start in range(0, len(wanted), DELETE_BATCH):
                part = wanted[start : start + DELETE_BATCH]
                found.update((await conn.execute(select(blobs.c.digest).where(blobs.c.digest.in_(part)))).scalars())
        return found

    async def stale(self, before: float) -> list[BlobRef]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(blobs.c.digest, blobs.c.size).where(blobs.c.touched_at < before))
            return [BlobRef(d, s) for d, s in rows]

    async def collect(self, digests: Iterable[str], before: float) -> list[BlobRef]:
        """Delete the bodies still older than `before`, headers and chunks together, in batches."""
        wanted = list(dict.fromkeys(digests))
        removed: list[BlobRef] = []
        for start in range(0, len(wanted), DELETE_BATCH):
            part = wanted[start : start + DELETE_BATCH]
            async with self._engine.begin() as conn:
                gone = (
                    await conn.execute(
                        delete(blobs)
                        .where(blobs.c.digest.in_(part), blobs.c.touched_at < before)
                        .returning(blobs.c.digest, blobs.c.size)
                    )
                ).all()
                if gone:
                    await conn.execute(delete(chunks).where(chunks.c.digest.in_([d for d, _ in gone])))
            removed += [BlobRef(d, s) for d, s in gone]
        return removed

    async def sweep_temporary(self, before: float) -> int:
        return 0  # a body is written in one transaction: nothing is left half-written

    def same_store(self, other: BlobStore) -> bool:
        return other is self

    # removing

    async def discard(self, digests: Iterable[str]) -> None:
        wanted = list(dict.fromkeys(digests))
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            async with self._engine.begin() as conn:
                await conn.execute(delete(blobs).where(blobs.c.digest.in_(part)))
                await conn.execute(delete(chunks).where(chunks.c.digest.in_(part)))

    def remove(self, digest: str) -> None:
        self._blocking(self.discard, [digest])

    async def all_digests(self) -> list[str]:
        async with self._engine.connect() as conn:
            return list((await conn.execute(select(blobs.c.digest))).scalars())

    def digests(self) -> list[str]:
        return self._blocking(self.all_digests)

    def _blocking(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run an async call from a worker thread on the loop that owns the engine."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError("a synchronous PgBlobStore call on its own event loop: await the async one")
        return asyncio.run_coroutine_threadsafe(fn(*args), self._loop).result()  # type: ignore[arg-type]
