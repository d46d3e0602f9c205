"""Fixtures shared by the whole suite: database URLs for both engines, and skip rules.

Tests that need PostgreSQL, root or a Debian tool skip with a message naming what is missing;
under CI (CI=true) they fail instead, so nothing is silently left untested there.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

PG_HOST = os.environ.get("COURRIEL_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("COURRIEL_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("COURRIEL_TEST_PG_USER", "postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, what: str) -> None:
    """Skip when something outside the project is missing; fail instead under CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide {what}")
    pytest.skip(f"needs {what}")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"the Debian tool {name!r} (see .ci/run)")
    assert path is not None
    return path


def postgres_available() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def pg_admin_url() -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"


async def create_pg_database() -> str:
    import asyncpg

    name = f"courriel_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_admin_url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


async def drop_pg_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(pg_admin_url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database on each engine: the suite runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    require(postgres_available(), f"PostgreSQL at {PG_HOST}:{PG_PORT}")
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
def is_root() -> Iterator[bool]:
    yield os.geteuid() == 0
