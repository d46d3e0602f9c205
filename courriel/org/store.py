"""The base every part of the directory store shares: the engine, transactions, name rules, common lookups.

Every write runs in one transaction that first bumps `directory_version`: that serializes writers
(so read-then-write checks such as "the first domain becomes the default" cannot race) and tells
the caches of every process to reload (org/cache.py). Reads never bump it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from courriel.core.errors import Conflict, NotFound, PermanentError
from courriel.org import schema as t
from courriel.org.model import MailboxDatabase, Server

_NAME = re.compile(r"[^\x00-\x1f\x7f]+\Z")


def check_name(name: str, what: str, max_length: int = 64) -> str:
    """Object names (servers, sites, databases, connectors): printable, trimmed, bounded."""
    name = name.strip()
    if not name:
        raise PermanentError(f"{what} name cannot be empty")
    if len(name) > max_length:
        raise PermanentError(f"{what} name {name!r} is longer than {max_length} characters")
    if not _NAME.match(name):
        raise PermanentError(f"{what} name {name!r} contains control characters")
    return name


def name_key(name: str) -> str:
    """Directory names compare case-insensitively, as Active Directory's do."""
    return name.strip().casefold()


class DirectoryStore:
    """Holds the engine; the directory's parts (domains, recipients, topology, connectors) extend it."""

    def __init__(self, engine: AsyncEngine, url: str, reader: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._reader = reader or engine
        self.url = url

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction; the version bump comes first so that writers queue up here."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(t.directory_version).values(version=t.directory_version.c.version + 1)
                )
                yield conn
        except IntegrityError as exc:
            # The explicit checks run under the version lock; this is the last line of defence.
            raise Conflict("the change conflicts with an existing object", str(exc.orig)) from None

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A read on a consistent snapshot that takes no write lock (storage/engine.py readers)."""
        async with self._reader.connect() as conn:
            yield conn

    async def version(self) -> int:
        """The change counter: it grows with every committed write, in any process."""
        async with self._read() as conn:
            return int((await conn.execute(select(t.directory_version.c.version))).scalar_one())


async def server_row(conn: AsyncConnection, name: str) -> Any:
    row = (await conn.execute(select(t.servers).where(t.servers.c.name_key == name_key(name)))).first()
    if row is None:
        raise NotFound(f"no server named {name!r} in the directory")
    return row


async def load_servers(conn: AsyncConnection, name: str | None = None) -> list[Server]:
    query = select(t.servers, t.sites.c.name.label("site_name")).join(
        t.sites, t.servers.c.site_id == t.sites.c.id
    )
    if name is not None:
        query = query.where(t.servers.c.name_key == name_key(name))
    rows = (await conn.execute(query.order_by(t.servers.c.name_key))).all()
    return [
        Server(
            name=r.name,
            fqdn=r.fqdn,
            roles=tuple(r.roles),
            site=r.site_name,
            addresses=tuple(r.addresses),
            port_offset=r.port_offset,
        )
        for r in rows
    ]


async def load_databases(conn: AsyncConnection, name: str | None = None) -> list[MailboxDatabase]:
    query = select(t.mailbox_databases, t.servers.c.name.label("server_name")).join(
        t.servers, t.mailbox_databases.c.server_id == t.servers.c.id
    )
    if name is not None:
        query = query.where(t.mailbox_databases.c.name_key == name_key(name))
    rows = (await conn.execute(query.order_by(t.mailbox_databases.c.name_key))).all()
    return [
        MailboxDatabase(
            name=r.name,
            url=r.url,
            # The model's contract: `server` is where the database is active; None while dismounted.
            server=r.server_name if r.mounted else None,
            mounted=r.mounted,
            issue_warning_quota=r.issue_warning_quota,
            prohibit_send_quota=r.prohibit_send_quota,
            prohibit_send_receive_quota=r.prohibit_send_receive_quota,
        )
        for r in rows
    ]


async def count(conn: AsyncConnection, table: Any, *where: Any) -> int:
    return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())
