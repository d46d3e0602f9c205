"""Group commit: concurrent writers share one transaction and one flush (DESIGN.md §4).

Callers submit a unit of work (a coroutine function taking the connection). One writer task
collects whatever is waiting, runs it all in a single transaction, commits once, then wakes every
caller. If the batch fails, each unit is retried alone so that one bad unit fails only its caller.
On SQLite this is also the "one batching writer" that avoids lock contention.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[Any]]
log = logging.getLogger(__name__)


class GroupCommitter:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256, name: str = "db") -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.name = name
        self._pending: list[tuple[Work, asyncio.Future[Any]]] = []
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

    async def submit(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `work` inside the next group transaction; returns once that transaction is committed."""
        if self._closing:
            raise RuntimeError(f"{self.name}: group committer is closed")
        self.start()
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
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

    async def _commit(self, batch: list[tuple[Work, asyncio.Future[Any]]]) -> None:
        results: list[Any] = []
        try:
            async with self.engine.begin() as conn:
                for work, _ in batch:
                    results.append(await work(conn))
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
