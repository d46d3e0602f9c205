"""Async SQLAlchemy engines per database, the same code for SQLite and PostgreSQL.

Writers (`open_engine`) — SQLite: WAL, synchronous=FULL (a commit is on disk when it returns) and
`BEGIN IMMEDIATE` for every transaction: research/python-ecosystem.md §6 measured lost updates and
"database is locked" with pysqlite's deferred transactions. PostgreSQL: asyncpg, READ COMMITTED,
atomic UPDATE … RETURNING.
Readers (`open_reader`) never queue behind the writer — SQLite: a second pool whose transactions
start with a deferred `BEGIN` on `query_only` connections (a stable WAL snapshot that neither
blocks nor is blocked by the writer). PostgreSQL: the same pool at REPEATABLE READ, so a read of
several statements sees one consistent state. Keep read transactions short (pitfall 4).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

WAL_ATTEMPTS = 50  # tries of the switch to WAL (about 25 s in all) before the error stands
SQLITE = "sqlite:///"  # the form the config file and the directory store SQLite databases in
IN_MEMORY = Path(":memory:")  # the path of `sqlite:///:memory:` as written: a database in no file


def sqlite_path(url: str, base_dir: Path | None = None) -> Path | None:
    """The file of a `sqlite:///path` URL, or None for any other URL.

    A relative path is a file in a server's data directory: it is taken in `base_dir` when one
    is given, and returned as written otherwise. `sqlite:////abs` names an absolute path, which
    `base_dir` leaves as it is.
    """
    if not url.startswith(SQLITE):
        return None
    path = Path(url[len(SQLITE) :])
    return path if base_dir is None else base_dir / path  # `/` keeps an absolute right side


def sqlite_url(path: Path) -> str:
    """The `sqlite:///` URL of a file (`sqlite:////abs` for an absolute path)."""
    return f"{SQLITE}{path}"


def async_url(url: str, base_dir: Path | None = None) -> str:
    """`sqlite:///rel/path` (relative to base_dir) or `postgresql://…` → the async driver's URL."""
    path = sqlite_path(url, base_dir)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{path}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path or postgresql://…")


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Leave transaction control to us (the documented SQLAlchemy recipe for SQLite).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    _switch_to_wal(cur)
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _switch_to_wal(cur: Any) -> None:
    """SQLite answers "database is locked" at once, without its busy handler, when several
    connections switch a new file to WAL together (a server's workers on first start): retry."""
    for attempt in range(WAL_ATTEMPTS):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _reader_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA query_only=ON")
    cur.close()


def _reader_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")  # deferred: a WAL read snapshot, no write lock


def open_reader(
    engine: AsyncEngine, url: str, base_dir: Path | None = None, *, pool_size: int = 5
) -> AsyncEngine:
    """A read-only engine beside `engine` (the writer) on the same database; dispose both."""
    if not is_sqlite(engine):
        # A pool of its own: the writer's may live on another event loop (GroupCommitter own_loop).
        return create_async_engine(
            async_url(url, base_dir),
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            pool_pre_ping=True,
            isolation_level="REPEATABLE READ",
        )
    reader = create_async_engine(async_url(url, base_dir), pool_size=pool_size)
    event.listen(reader.sync_engine, "connect", _reader_pragmas)
    event.listen(reader.sync_engine, "begin", _reader_begin)
    return reader


async def dispose(engine: AsyncEngine, reader: AsyncEngine) -> None:
    """Close a writer and its reader."""
    if reader is not engine:
        await reader.dispose()
    await engine.dispose()


def open_engine(url: str, base_dir: Path | None = None, *, pool_size: int = 5) -> AsyncEngine:
    """An engine for a directory, queue or mailbox database URL."""
    full = async_url(url, base_dir)
    if full.startswith("sqlite"):
        engine = create_async_engine(full, poolclass=NullPool if ":memory:" in full else None)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        full, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True, pool_recycle=3600
    )


def open_sync_sqlite(path: Path) -> Engine:
    """A synchronous engine on a local SQLite file, for a `ThreadedGroupCommitter`'s writer thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(sqlite_url(path), pool_size=1, max_overflow=0)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def open_sync_sqlite_reader(path: Path, *, pool_size: int) -> Engine:
    """A synchronous read-only engine on a SQLite file, its connections set up as `open_reader`'s."""
    engine = create_engine(sqlite_url(path), pool_size=pool_size, max_overflow=pool_size)
    event.listen(engine, "connect", _reader_pragmas)
    event.listen(engine, "begin", _reader_begin)
    return engine


def database_name(url: str) -> str:
    """The database part of a URL, for messages."""
    return make_url(url).database or url
