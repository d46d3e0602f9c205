"""Schema versions: each store (directory, queue, mailbox database) lists its migration steps in order.

Step 1 creates the first schema; later steps alter it. An existing database is brought forward on
open, inside one transaction per step, so an organization survives an upgrade.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Step = Callable[[AsyncConnection], Awaitable[None]]

_meta = MetaData()
schema_versions = Table(
    "schema_versions",
    _meta,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)


async def current_version(conn: AsyncConnection, component: str) -> int:
    await conn.run_sync(lambda c: _meta.create_all(c, checkfirst=True))
    row = (
        await conn.execute(select(schema_versions.c.version).where(schema_versions.c.component == component))
    ).first()
    return row[0] if row else 0


async def migrate(engine: AsyncEngine, component: str, steps: Sequence[Step]) -> int:
    """Apply the steps not yet applied; returns the version now in force.

    Several processes may open a new database at once (servers sharing a directory, a server's
    workers). On PostgreSQL an advisory lock held for the whole run makes them take turns; on
    SQLite each step re-reads the version inside its BEGIN IMMEDIATE transaction.
    """
    if engine.dialect.name != "postgresql":
        return await _migrate(engine, component, steps)
    key = zlib.crc32(f"courriel-migrate-{component}".encode())
    async with engine.connect() as lock:
        await lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            return await _migrate(engine, component, steps)
        finally:
            await lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            await lock.commit()


async def _migrate(engine: AsyncEngine, component: str, steps: Sequence[Step]) -> int:
    async with engine.begin() as conn:
        version = await current_version(conn, component)
    if version > len(steps):
        raise RuntimeError(
            f"{component} schema is version {version}, newer than this Courriel knows ({len(steps)})"
        )
    for number in range(version + 1, len(steps) + 1):
        async with engine.begin() as conn:
            # Read again under the step's write lock (BEGIN IMMEDIATE on SQLite): another process
            # opening the same new database (a second worker) may have applied it meanwhile.
            if await current_version(conn, component) >= number:
                continue
            await steps[number - 1](conn)
            if number == 1:
                await conn.execute(schema_versions.insert().values(component=component, version=1))
            else:
                await conn.execute(
                    schema_versions.update()
                    .where(schema_versions.c.component == component)
                    .values(version=number)
                )
    return len(steps)


def create_tables(metadata: MetaData) -> Step:
    """The usual first step: create a component's tables."""

    async def step(conn: AsyncConnection) -> None:
        await conn.run_sync(lambda c: metadata.create_all(c))

    return step


def add_table(table: Table) -> Step:
    """A later step that adds one table. A database made after the table joined the component's
    metadata has it from step 1 already: checkfirst."""

    async def step(conn: AsyncConnection) -> None:
        await conn.run_sync(lambda c: table.create(c, checkfirst=True))

    return step
