"""Opening a mailbox database: the writer (group commit) and the readers.

Every write goes through one GroupCommitter (storage/groupcommit.py): concurrent deliveries and
IMAP changes share one transaction and one flush, and on SQLite it is the single writer that
python-ecosystem.md §6 calls for. Reads never queue behind it: they use the reader engine of
storage/engine.py (a WAL snapshot on SQLite, REPEATABLE READ on PostgreSQL), one short
transaction per store call so they do not hold back WAL checkpoints or VACUUM (pitfall 4).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from courriel.core.errors import CourrielError
from courriel.mailbox.schema import COMPONENT, STEPS
from courriel.storage.engine import is_sqlite, open_engine, open_reader
from courriel.storage.groupcommit import GroupCommitter
from courriel.storage.migrations import migrate

T = TypeVar("T")
READ_POOL_SIZE = 5


class Database:
    """The engines and the writer of one mailbox database."""

    def __init__(self, name: str, engine: AsyncEngine, reader: AsyncEngine) -> None:
        self.name = name
        self.engine = engine
        self.reader = reader
        # The writer runs on a loop of its own: deliveries are not slowed by the server's sessions.
        self.committer = GroupCommitter(engine, name=f"mailbox-{name}", own_loop=True)

    @classmethod
    async def open(cls, name: str, url: str, base_dir: Path | None) -> Database:
        engine = open_engine(url, base_dir)
        try:
            await migrate(engine, COMPONENT, STEPS)
        finally:
            await engine.dispose()  # a fresh pool for the writer's own loop
        return cls(name, engine, open_reader(engine, url, base_dir, pool_size=READ_POOL_SIZE))

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

    async def close(self) -> None:
        await self.committer.close()  # disposes the writer engine on its own loop
        await self.reader.dispose()
