"""Group commit: concurrent writers share one transaction and one flush (DESIGN.md §4).

Callers submit a unit of work. One writer task collects whatever is waiting, runs it all in a
single transaction, commits once, then wakes every caller. If the batch fails, each unit is
retried alone so that one bad unit fails only its caller. On SQLite this is also the "one
batching writer" that avoids lock contention.

Two flavours share the batching loop:
- `GroupCommitter`: units are coroutines on an AsyncConnection (SQLite through aiosqlite, or
  PostgreSQL through asyncpg), for stores that run on both engines.
- `ThreadedGroupCommitter`: units are plain functions on a synchronous SQLite connection, and a
  whole batch runs in one hop to a dedicated thread. aiosqlite costs a thread hop per statement,
  and a batch then lasts as long as all its statements together; the transport queue, which is
  always a local SQLite file and sits on the path of every message, uses this one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
U = TypeVar("U")  # the unit of work's type
Work = Callable[[AsyncConnection], Awaitable[Any]]
SyncWork = Callable[[Connection], Any]
log = logging.getLogger(__name__)


class _Batcher(Generic[U]):
    """The batching loop; subclasses say how one batch runs."""

    def __init__(self, *, max_batch: int, name: str) -> None:
        self.max_batch = max_batch
        self.name = name
        self._pending: list[tuple[U, asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.units = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"group-commit-{self.name}")

    async def close(self) -> None:
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _submit(self, work: U) -> Any:
        if self._closing:
            raise RuntimeError(f"{self.name}: group committer is closed")
        self.start()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((work, fut))
        self._wakeup.set()
        return await fut

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                await self._commit(batch)
            if self._closing and not self._pending:
                return

    async def _execute(self, units: Sequence[U]) -> list[Any]:
        raise NotImplementedError

    async def _commit(self, batch: list[tuple[U, asyncio.Future[Any]]]) -> None:
        try:
            results = await self._execute([work for work, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _, fut = batch[0]
                if not fut.done():
                    fut.set_exception(exc)
                return
            log.warning("%s: group of %d failed; retrying one by one", self.name, len(batch), exc_info=True)
            for unit in batch:
                await self._commit([unit])
            return
        self.batches += 1
        self.units += len(batch)
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)


class GroupCommitter(_Batcher[Work]):
    """Async units on an AsyncEngine.

    With `own_loop`, the transactions run on a private event loop in a dedicated thread: every
    statement through aiosqlite or asyncpg waits for its event loop to come round, and on the
    server's loop, busy with hundreds of sessions, that wait multiplies by the statements of a
    batch. The engine must then be used by nothing else (give readers their own engine), and
    its pool must be fresh (dispose it after migrations ran on another loop).
    """

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256, name: str = "db", own_loop: bool = False) -> None:
        super().__init__(max_batch=max_batch, name=name)
        self.engine = engine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        if own_loop:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name=f"writer-{name}", daemon=True)
            self._thread.start()

    async def submit(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `work` inside the next group transaction; returns once that transaction is committed."""
        result: T = await self._submit(work)
        return result

    async def _run_batch(self, units: Sequence[Work]) -> list[Any]:
        async with self.engine.begin() as conn:
            return [await work(conn) for work in units]

    async def _execute(self, units: Sequence[Work]) -> list[Any]:
        if self._loop is None:
            return await self._run_batch(units)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._run_batch(units), self._loop))

    async def close(self) -> None:
        await super().close()
        if self._loop is not None and self._thread is not None:
            # The pool's connections belong to the private loop: close them there.
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.engine.dispose(), self._loop))
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self._loop = None


class ThreadedGroupCommitter(_Batcher[SyncWork]):
    def __init__(self, engine: Engine, *, max_batch: int = 512, name: str = "db") -> None:
        super().__init__(max_batch=max_batch, name=name)
        self.engine = engine
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"writer-{name}")

    async def submit(self, work: Callable[[Connection], T]) -> T:
        """Run `work` inside the next group transaction (in the writer thread); returns once committed."""
        result: T = await self._submit(work)
        return result

    def _execute_sync(self, units: Sequence[SyncWork]) -> list[Any]:
        with self.engine.begin() as conn:
            return [work(conn) for work in units]

    async def _execute(self, units: Sequence[SyncWork]) -> list[Any]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._execute_sync, units)

    async def close(self) -> None:
        await super().close()
        self._thread.shutdown(wait=True)
