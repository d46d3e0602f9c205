"""Move fences: while a mailbox's last changes are copied, and after it has moved away, its old
database refuses every write to it.

`courriel mailbox move` ends with a short step in which the source copy must not change: the last
changes are copied, the directory switches the recipient's database, and the source copy goes.
A server whose directory cache is a few seconds old may still try to deliver to the old
database. The guard therefore lives in that database, inside the writers' own transactions: a
trigger on the mailbox row, which every write to a mailbox updates first (mailbox/quota.py) and
a delivery inserts when it creates a mailbox, aborts the write while a fence row names the
mailbox. Local delivery sees the abort as a temporary failure (the queue retries, by then to the
new database); an IMAP change fails and the client retries. The fence stays as a tombstone after
the move, so a stale delivery cannot recreate the mailbox there; a later move back lifts it.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import BigInteger, Column, MetaData, Table, Text, delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from courriel.mailbox.expunge import forget_unreferenced
from courriel.mailbox.schema import deliveries, folders, mailboxes, messages
from courriel.storage.engine import open_engine
from courriel.storage.migrations import Step, create_tables, migrate

COMPONENT = "mailbox-fence"
FENCED = "courriel-mailbox-fenced"  # the trigger's error text: local delivery recognises it
LOCKED, MOVED = "locked", "moved"

metadata = MetaData()
fences = Table(
    "mbx_move_fences",
    metadata,
    Column("guid", Text, primary_key=True),
    Column("state", Text, nullable=False),  # LOCKED during the final step, MOVED afterwards
    Column("since", BigInteger, nullable=False),
)

_SQLITE = [
    f"""CREATE TRIGGER IF NOT EXISTS mbx_move_fence_{event.lower()} BEFORE {event} ON mbx_mailboxes
    WHEN EXISTS (SELECT 1 FROM mbx_move_fences WHERE guid = NEW.guid)
    BEGIN SELECT RAISE(ABORT, '{FENCED}'); END"""
    for event in ("INSERT", "UPDATE")
]
_POSTGRESQL = [
    f"""CREATE OR REPLACE FUNCTION mbx_move_fence() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM mbx_move_fences WHERE guid = NEW.guid) THEN
            RAISE EXCEPTION '{FENCED}: mailbox %', NEW.guid USING ERRCODE = 'lock_not_available';
        END IF;
        RETURN NEW;
    END $$""",
    "DROP TRIGGER IF EXISTS mbx_move_fence ON mbx_mailboxes",
    """CREATE TRIGGER mbx_move_fence BEFORE INSERT OR UPDATE ON mbx_mailboxes
    FOR EACH ROW EXECUTE FUNCTION mbx_move_fence()""",
]


async def _ensure_trigger(conn: AsyncConnection) -> None:
    """Create the trigger unless it is there: checked at every open, not once by a migration, so
    that a mailbox schema change that rebuilds mbx_mailboxes cannot leave the fence toothless."""
    if conn.dialect.name == "sqlite":
        for statement in _SQLITE:
            await conn.execute(text(statement))
        return
    present = await conn.execute(
        text("SELECT 1 FROM pg_trigger WHERE tgname = 'mbx_move_fence' AND tgrelid = 'mbx_mailboxes'::regclass")
    )
    if present.first() is None:
        for statement in _POSTGRESQL:
            await conn.execute(text(statement))


STEPS: list[Step] = [create_tables(metadata)]


async def moved_away(conn: AsyncConnection, guid: str) -> bool:
    """Has this mailbox been moved out of the database `conn` reads (a MOVED tombstone)?"""
    has_fences = await conn.run_sync(lambda sync: sync.dialect.has_table(sync, fences.name))
    if not has_fences:  # no mailbox ever moved out of this database
        return False
    return await fence_state(conn, guid) == MOVED


async def fence_state(conn: AsyncConnection, guid: str) -> str | None:
    """The mailbox's fence in the database `conn` reads: LOCKED, MOVED, or None."""
    return (await conn.execute(select(fences.c.state).where(fences.c.guid == guid))).scalar()


def is_fenced(exc: BaseException) -> bool:
    """True if a write failed because the mailbox is fenced (being moved, or moved away)."""
    return FENCED in str(exc)


class MoveFence:
    """The fence rows of one mailbox database (open it after the mailbox schema exists)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @classmethod
    async def open(cls, url: str, base_dir: Path | None) -> MoveFence:
        engine = open_engine(url, base_dir, pool_size=1)
        try:
            await migrate(engine, COMPONENT, STEPS)
            async with engine.begin() as conn:
                await _ensure_trigger(conn)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def close(self) -> None:
        await self._engine.dispose()

    async def state(self, guid: str) -> str | None:
        async with self._engine.connect() as conn:
            return await fence_state(conn, guid)

    async def raise_fence(self, guid: str, state: str = LOCKED) -> None:
        """Fence the mailbox; returns once no write that started before the fence can still commit.

        On SQLite the fence's own write transaction already waited for the writer in progress. On
        PostgreSQL a writer that passed the trigger before the fence holds the mailbox row's lock
        until it commits: taking that lock waits for it.
        """
        async with self._engine.begin() as conn:
            await conn.execute(delete(fences).where(fences.c.guid == guid))
            await conn.execute(fences.insert().values(guid=guid, state=state, since=int(time.time())))
        if self._engine.dialect.name != "sqlite":
            async with self._engine.begin() as conn:
                await conn.execute(select(mailboxes.c.guid).where(mailboxes.c.guid == guid).with_for_update())

    async def lift(self, guid: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(fences).where(fences.c.guid == guid))

    async def remove_mailbox(self, guid: str) -> set[str]:
        """Delete the mailbox and everything in it; returns the digests its messages referenced.

        Deletes do not fire the fence (it guards inserts and updates), so this works while fenced.
        """
        async with self._engine.begin() as conn:
            digests = set(
                (
                    await conn.execute(
                        select(messages.c.digest)
                        .join(folders, folders.c.id == messages.c.folder_id)
                        .where(folders.c.mailbox == guid)
                        .distinct()
                    )
                ).scalars()
            )
            await conn.execute(delete(deliveries).where(deliveries.c.mailbox == guid))
            # Folders, messages, expunge history and subscriptions go by ON DELETE CASCADE.
            await conn.execute(delete(mailboxes).where(mailboxes.c.guid == guid))
            await forget_unreferenced(conn, frozenset(digests))
        return digests
