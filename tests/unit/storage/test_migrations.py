"""Schema migrations when several processes open one new database at once (a server's workers)."""

from __future__ import annotations

import asyncio

from sqlalchemy import Column, Integer, MetaData, Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.storage.engine import open_engine
from courriel.storage.migrations import create_tables, migrate, schema_versions

_meta = MetaData()
Table("things", _meta, Column("id", Integer, primary_key=True))


async def _added(conn: AsyncConnection) -> None:
    await conn.execute(text("ALTER TABLE things ADD COLUMN size INTEGER"))


async def test_concurrent_openers_apply_each_step_once(db_url: str) -> None:
    steps = [create_tables(_meta), _added]
    engines = [open_engine(db_url) for _ in range(4)]
    try:
        versions = await asyncio.gather(*(migrate(e, "things", steps) for e in engines))
        assert versions == [2, 2, 2, 2]
        async with engines[0].connect() as conn:
            rows = (await conn.execute(select(schema_versions))).all()
        assert [(r.component, r.version) for r in rows] == [("things", 2)]
    finally:
        for e in engines:
            await e.dispose()
