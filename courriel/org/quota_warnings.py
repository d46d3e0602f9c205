"""When each mailbox was last warned that it is almost full (IssueWarningQuota), in the directory.

The directory is shared by every worker of every Mailbox server, so one row per mailbox there is
what keeps the warning to one a day however many processes deliver to that mailbox. A `claim` is
one transaction: the row is read under a write lock (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's
`SELECT … FOR UPDATE`, or the primary key for a first warning) and moved to now only when the last
warning is old enough, so of two processes that find the mailbox over its warning quota at the
same moment exactly one sends the message. Rows older than the interval tell nothing and are
forgotten now and then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from courriel.org.schema import quota_warnings as table
from courriel.storage.engine import open_engine

FORGET_EVERY = 3600.0  # seconds between deletions of rows past the interval


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of `claim`: granted (send the warning now), else when the last one went out."""

    granted: bool
    warned_at: float | None  # granted: the previous warning's time (for `release`); else the last warning's


class QuotaWarningLog:
    """The `quota_warnings` table of the organization directory (org/schema.py)."""

    def __init__(self, engine: AsyncEngine, *, owned: bool = False) -> None:
        self._engine = engine
        self._owned = owned
        self._forgotten: float | None = None  # monotonic time of the last `_forget_old`

    @classmethod
    def open(cls, url: str, base_dir: Path | None = None) -> QuotaWarningLog:
        """A small engine of its own on the directory (whose migrations made the table)."""
        return cls(open_engine(url, base_dir, pool_size=1), owned=True)

    async def close(self) -> None:
        if self._owned:
            await self._engine.dispose()

    async def claim(self, guid: str, now: float, interval: float) -> Claim:
        """Take the right to warn this mailbox now, unless it was warned less than `interval` ago."""
        async with self._engine.begin() as conn:
            claim = await _claim(conn, guid, now, interval)
        if claim.granted:
            await self._forget_old(now - interval)
        return claim

    async def release(self, guid: str, claimed_at: float, previous: float | None) -> None:
        """Undo a claim whose warning could not be queued, so the next delivery tries again."""
        async with self._engine.begin() as conn:
            mine = (table.c.guid == guid) & (table.c.warned_at == claimed_at)
            if previous is None:
                await conn.execute(delete(table).where(mine))
            else:
                await conn.execute(update(table).where(mine).values(warned_at=previous))

    async def last_warned(self, guid: str) -> float | None:
        async with self._engine.connect() as conn:
            return (await conn.execute(select(table.c.warned_at).where(table.c.guid == guid))).scalar_one_or_none()

    async def _forget_old(self, before: float) -> None:
        if self._forgotten is not None and time.monotonic() - self._forgotten < FORGET_EVERY:
            return
        self._forgotten = time.monotonic()
        async with self._engine.begin() as conn:
            await conn.execute(delete(table).where(table.c.warned_at < before))


async def _claim(conn: AsyncConnection, guid: str, now: float, interval: float) -> Claim:
    row = (await conn.execute(select(table.c.warned_at).where(table.c.guid == guid).with_for_update())).first()
    if row is None:
        inserted = await conn.execute(_insert(conn).values(guid=guid, warned_at=now).on_conflict_do_nothing())
        # rowcount 0: another process claimed a first warning this instant
        return Claim(True, None) if inserted.rowcount == 1 else Claim(False, now)
    if row.warned_at > now - interval:
        return Claim(False, float(row.warned_at))
    await conn.execute(update(table).where(table.c.guid == guid).values(warned_at=now))
    return Claim(True, float(row.warned_at))


def _insert(conn: AsyncConnection) -> sqlite.Insert | postgresql.Insert:
    """An INSERT with ON CONFLICT on either engine."""
    return sqlite.insert(table) if conn.dialect.name == "sqlite" else postgresql.insert(table)
