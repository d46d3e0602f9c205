"""Opening a mailbox database: the writer (group commit) and the readers.

Every write goes through one GroupCommitter (storage/groupcommit.py): concurrent deliveries and
IMAP changes share one transaction and one flush, and on SQLite it is the single writer that
python-ecosystem.md §6 calls for. Reads never queue behind it: they use the reader engine of
storage/engine.py (a WAL snapshot on SQLite, REPEATABLE READ on PostgreSQL), one short
transaction per store call so they do not hold back WAL checkpoints or VACUUM (pitfall 4).

The hot reads (SELECT's snapshot, FETCH metadata, SEARCH, IDLE polls) are written against a
synchronous connection and run by `read_sync`: on SQLite the whole transaction runs in one
worker-thread hop on a pysqlite connection, where aiosqlite would hop threads for every cursor
step (about nine hops, most of a small read's time); on PostgreSQL the same function runs
through `AsyncConnection.run_sync` over asyncpg.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from courriel.core.errors import CourrielError
from courriel.mailbox.schema import COMPONENT, STEPS
from courriel.storage.engine import is_sqlite, open_engine, open_reader, open_sync_sqlite_reader, sqlite_path
from courriel.storage.groupcommit import GroupCommitter
from courriel.storage.migrations import migrate

T = TypeVar("T")
READ_POOL_SIZE = 5
READ_MMAP_SIZE = 1 << 30  # address space only: pages are the OS's file cache, shared and reclaimable


class Database:
    """The engines and the writer of one mailbox database."""

    def __init__(
        self, name: str, engine: AsyncEngine, reader: AsyncEngine, sync_reader: Engine | None = None
    ) -> None:
        self.name = name
        self.engine = engine
        self.reader = reader
        self._sync_reader = sync_reader
        self._threads = (
            ReadThreads(READ_POOL_SIZE, f"mailbox-{name}-read") if sync_reader is not None else None
        )
        # The writer runs on a loop of its own: deliveries are not slowed by the server's sessions.
        self.committer = GroupCommitter(engine, name=f"mailbox-{name}", own_loop=True)

    @classmethod
    async def open(cls, name: str, url: str, base_dir: Path | None) -> Database:
        engine = open_engine(url, base_dir)
        try:
            await migrate(engine, COMPONENT, STEPS)
        finally:
            await engine.dispose()  # a fresh pool for the writer's own loop
        reader = open_reader(engine, url, base_dir, pool_size=READ_POOL_SIZE)
        path = sqlite_path(url, base_dir)
        sync_reader = _sqlite_sync_reader(path) if path is not None else None
        return cls(name, engine, reader, sync_reader)

    @property
    def sqlite(self) -> bool:
        return is_sqlite(self.engine)

    async def write(self, work: Callable[[AsyncConnection], Awaitable[T]], *, isolate: bool = True) -> T:
        """Run `work` in the next group transaction; returns once it is committed.

        With `isolate`, the work runs under a savepoint: if it raises a CourrielError (a refusal
        such as "folder exists" or "over quota") only its own changes are undone and the error is
        raised here, while the rest of the group commits. Any other exception fails the group,
        which the committer then retries unit by unit.
        """
        if not isolate:
            return await self.committer.submit(work)

        async def unit(conn: AsyncConnection) -> tuple[T | None, CourrielError | None]:
            try:
                async with conn.begin_nested():
                    return await work(conn), None
            except CourrielError as refusal:
                return None, refusal

        value, refusal = await self.committer.submit(unit)
        if refusal is not None:
            raise refusal
        return cast(T, value)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A short read-only transaction on a consistent snapshot."""
        async with self.reader.connect() as conn:
            yield conn

    @property
    def threaded_reads(self) -> bool:
        """`read_sync` runs its work in a worker thread (SQLite), where file reads may join it;
        on PostgreSQL it runs on the event loop's thread (greenlet), where they must not."""
        return self._sync_reader is not None

    async def read_sync(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one short read-only transaction on a consistent snapshot (see above)."""
        sync_reader, threads = self._sync_reader, self._threads
        if sync_reader is None or threads is None:
            async with self.reader.connect() as conn:
                return await conn.run_sync(work)

        def run() -> T:
            with sync_reader.connect() as conn:
                return work(conn)  # the pool's reset on return ends the transaction

        return await threads.submit(run)

    async def close(self) -> None:
        await self.committer.close()  # disposes the writer engine on its own loop
        await self.reader.dispose()
        if self._sync_reader is not None and self._threads is not None:
            self._threads.shutdown()
            self._sync_reader.dispose()


Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class ReadThreads:
    """The threads that run `read_sync` work, each waiting on a queue of its own.

    A job goes to the thread that went idle last (its connection and caches are warm) and wakes
    it alone; with ThreadPoolExecutor's one shared queue a hop woke more than one worker to fight
    for the GIL, which was most of a one-row read's cost. Jobs wait in a backlog while every
    thread is busy, and the next thread to finish takes them in order."""

    def __init__(self, size: int, name: str) -> None:
        self._lock = threading.Lock()
        self._queues: list[SimpleQueue[Job | None]] = [SimpleQueue() for _ in range(size)]
        self._idle = list(self._queues)
        self._backlog: deque[Job] = deque()
        self._threads = [
            threading.Thread(target=self._work, args=(q,), name=f"{name}-{k}", daemon=True)
            for k, q in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job: Job = (loop, future, fn)
        with self._lock:
            if not self._idle:
                self._backlog.append(job)
                return future
            queue = self._idle.pop()
        queue.put(job)
        return future

    def _work(self, queue: SimpleQueue[Job | None]) -> None:
        job: Job | None = None
        while True:
            if job is None:
                job = queue.get()
                if job is None:
                    return
            loop, future, fn = job
            try:
                outcome: tuple[Any, BaseException | None] = (fn(), None)
            except BaseException as exc:  # handed to the awaiting task, as an executor does
                outcome = (None, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:  # the loop is closed: nobody awaits the result any more
                pass
            with self._lock:
                job = self._backlog.popleft() if self._backlog else None
                if job is None:
                    self._idle.append(queue)

    def shutdown(self) -> None:
        """Let the threads finish their work (and the backlog), then end them."""
        for queue in self._queues:
            queue.put(None)
        for thread in self._threads:
            thread.join()


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _sqlite_sync_reader(path: Path) -> Engine:
    """pysqlite connections on the same file, set up as storage/engine.py sets its readers up."""
    engine = open_sync_sqlite_reader(path, pool_size=READ_POOL_SIZE)

    @event.listens_for(engine, "connect")
    def mmap(dbapi_conn: Any, _record: Any) -> None:
        # Reads through a memory map, not read() into SQLite's page cache: SEARCH TEXT scans
        # the stored text of a whole folder (65 MB for 10,000 messages), ~30% faster mapped.
        dbapi_conn.execute(f"PRAGMA mmap_size={READ_MMAP_SIZE}")

    return engine
