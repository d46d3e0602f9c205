"""Sites, servers and mailbox databases: where the organization's roles run and where mailboxes live.

A server registers itself when it is set up (`courriel init`), and registration creates the seed's
default receive connectors for its roles (org/defaults.py). A mailbox database lives on one Mailbox
server and is active there while mounted (Mount-Database / Dismount-Database).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.core.errors import Conflict, NotFound, PermanentError
from courriel.core.ports import Role
from courriel.org import schema as t
from courriel.org.connectors import insert_receive_connector
from courriel.org.defaults import SERVICE_ROLE, WILDCARD_LISTEN, default_receive_connectors
from courriel.org.domains import normalize_domain, normalize_host
from courriel.org.model import MailboxDatabase, Server, Site
from courriel.org.store import (
    DirectoryStore,
    check_name,
    count,
    load_databases,
    load_servers,
    name_key,
    server_row,
)

DEFAULT_SITE = "Default-First-Site-Name"
# New-MailboxDatabase's quota defaults, as the model states them.
DATABASE_QUOTAS = {
    f.name: f.default for f in dataclasses.fields(MailboxDatabase) if f.name.endswith("_quota")
}
ROLE_ORDER = (Role.CLIENT_ACCESS, Role.MAILBOX, Role.EDGE)


def check_roles(roles: Iterable[Role | str]) -> tuple[str, ...]:
    try:
        chosen = {Role(str(r).strip().lower()) for r in roles}
    except ValueError as exc:
        raise PermanentError(f"{exc}; roles are {', '.join(r.value for r in ROLE_ORDER)}") from None
    if not chosen:
        raise PermanentError("a server needs at least one role")
    if Role.EDGE in chosen and len(chosen) > 1:
        raise PermanentError("the edge role always runs alone")
    return tuple(r.value for r in ROLE_ORDER if r in chosen)


def check_database_url(url: str) -> str:
    url = url.strip()
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://", "postgresql+asyncpg://")):
        raise PermanentError(f"database URL {url!r} must be sqlite:///path or postgresql://…")
    return url


async def _site_id(conn: AsyncConnection, name: str, *, create: bool) -> int:
    name = check_name(name, "site")
    found = (
        await conn.execute(select(t.sites.c.id).where(t.sites.c.name_key == name_key(name)))
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    if not create:
        raise NotFound(f"no site named {name!r}")
    return int(
        (
            await conn.execute(
                t.sites.insert().values(name=name, name_key=name_key(name)).returning(t.sites.c.id)
            )
        ).scalar_one()
    )


async def _database_row(conn: AsyncConnection, name: str) -> tuple[int, int, bool]:
    row = (
        await conn.execute(
            select(
                t.mailbox_databases.c.id, t.mailbox_databases.c.server_id, t.mailbox_databases.c.mounted
            ).where(t.mailbox_databases.c.name_key == name_key(name))
        )
    ).first()
    if row is None:
        raise NotFound(f"no mailbox database named {name!r}")
    return int(row.id), int(row.server_id), bool(row.mounted)


async def _mailbox_server_id(conn: AsyncConnection, server: str) -> int:
    row = await server_row(conn, server)
    if Role.MAILBOX.value not in row.roles:
        raise PermanentError(f"server {row.name} does not run the mailbox role")
    return int(row.id)


class TopologyOps(DirectoryStore):
    async def new_site(self, name: str) -> Site:
        async with self._write() as conn:
            if await count(conn, t.sites, t.sites.c.name_key == name_key(name)):
                raise Conflict(f"a site named {name.strip()!r} exists already")
            await _site_id(conn, name, create=True)
        return Site(name.strip())

    async def list_sites(self) -> list[Site]:
        async with self._read() as conn:
            rows = (await conn.execute(select(t.sites.c.name).order_by(t.sites.c.name_key))).all()
        return [Site(r.name) for r in rows]

    async def register_server(
        self,
        name: str,
        fqdn: str,
        roles: Iterable[Role | str],
        site: str = DEFAULT_SITE,
        addresses: Sequence[str] = (),
        port_offset: int = 0,
        *,
        listen: Sequence[str] = WILDCARD_LISTEN,
    ) -> Server:
        """Add a server, or bring an existing one up to date (idempotent).

        A new server gets the seed's default receive connectors for its roles, bound to its
        `listen` addresses; a role added later gets its connectors then. Nothing else is touched,
        so an administrator's changes to the connectors survive re-registration.
        """
        name = check_name(name, "server")
        fqdn = normalize_domain(fqdn)
        role_names = check_roles(roles)
        address_list = [normalize_host(a) for a in addresses]
        if not 0 <= port_offset <= 60000:
            raise PermanentError(f"port offset {port_offset} is outside 0-60000")
        values = {
            "name": name,
            "name_key": name_key(name),
            "fqdn": fqdn,
            "roles": list(role_names),
            "addresses": address_list,
            "port_offset": port_offset,
        }
        async with self._write() as conn:
            values["site_id"] = await _site_id(conn, site, create=True)
            existing = (
                await conn.execute(select(t.servers).where(t.servers.c.name_key == name_key(name)))
            ).first()
            if existing is None:
                await conn.execute(t.servers.insert().values(**values))
                added_roles = {Role(r) for r in role_names}
            else:
                await conn.execute(update(t.servers).where(t.servers.c.id == existing.id).values(**values))
                added_roles = {Role(r) for r in role_names} - {Role(r) for r in existing.roles}
            row = await server_row(conn, name)
            for connector in default_receive_connectors(name, role_names, listen):
                if SERVICE_ROLE[connector.transport_role] in added_roles:
                    await insert_receive_connector(conn, row, connector, skip_existing=True)
            return (await load_servers(conn, name))[0]

    async def list_servers(self) -> list[Server]:
        async with self._read() as conn:
            return await load_servers(conn)

    async def get_server(self, name: str) -> Server:
        async with self._read() as conn:
            found = await load_servers(conn, name)
        if not found:
            raise NotFound(f"no server named {name!r} in the directory")
        return found[0]

    async def new_database(
        self, name: str, url: str, server: str, *, mounted: bool = True
    ) -> MailboxDatabase:
        name = check_name(name, "mailbox database")
        url = check_database_url(url)
        async with self._write() as conn:
            if await count(conn, t.mailbox_databases, t.mailbox_databases.c.name_key == name_key(name)):
                raise Conflict(f"a mailbox database named {name!r} exists already")
            server_id = await _mailbox_server_id(conn, server)
            await conn.execute(
                t.mailbox_databases.insert().values(
                    name=name,
                    name_key=name_key(name),
                    url=url,
                    server_id=server_id,
                    mounted=mounted,
                    **DATABASE_QUOTAS,
                )
            )
            return (await load_databases(conn, name))[0]

    async def mount_database(
        self, name: str, server: str | None = None, *, url: str | None = None
    ) -> MailboxDatabase:
        """Mount a database, on its server or (a switchover) on another Mailbox server, and with
        `url` reached there by that URL. One transaction, so no server ever sees it mounted on two
        servers; the old server closes it and the new one opens it at their next directory poll."""
        async with self._write() as conn:
            row_id, server_id, _ = await _database_row(conn, name)
            values: dict[str, object] = {"mounted": True, "server_id": server_id}
            if server is not None:
                values["server_id"] = await _mailbox_server_id(conn, server)
            if url is not None:
                values["url"] = check_database_url(url)
            await conn.execute(
                update(t.mailbox_databases).where(t.mailbox_databases.c.id == row_id).values(**values)
            )
            return (await load_databases(conn, name))[0]

    async def dismount_database(self, name: str) -> MailboxDatabase:
        async with self._write() as conn:
            row_id, _, _ = await _database_row(conn, name)
            await conn.execute(
                update(t.mailbox_databases).where(t.mailbox_databases.c.id == row_id).values(mounted=False)
            )
            return (await load_databases(conn, name))[0]

    async def remove_database(self, name: str) -> None:
        async with self._write() as conn:
            row_id, _, _ = await _database_row(conn, name)
            held = await count(conn, t.recipients, t.recipients.c.database_id == row_id)
            if held:
                raise Conflict(
                    f"mailbox database {name} still holds {held} mailbox(es); move or remove them first"
                )
            await conn.execute(t.mailbox_databases.delete().where(t.mailbox_databases.c.id == row_id))

    async def list_databases(self) -> list[MailboxDatabase]:
        async with self._read() as conn:
            return await load_databases(conn)

    async def get_database(self, name: str) -> MailboxDatabase:
        async with self._read() as conn:
            found = await load_databases(conn, name)
        if not found:
            raise NotFound(f"no mailbox database named {name!r}")
        return found[0]
