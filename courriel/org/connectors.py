"""Receive and send connectors in the directory (New-/Set-/Remove-/Get-ReceiveConnector and -SendConnector).

A connector's parameters are one JSON document, read back through the model's dataclass and
checked by org/connector_rules.py on every write, so a stored connector is always a valid one.
Receive connectors belong to a server (name unique per server); send connectors to the
organization (name unique).
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.core.errors import Conflict, NotFound, PermanentError
from courriel.core.ports import Role
from courriel.org import schema as t
from courriel.org.codec import apply_changes, build, to_document
from courriel.org.connector_rules import (
    check_receive_conflicts,
    check_receive_connector,
    check_send_connector,
)
from courriel.org.defaults import usage_defaults
from courriel.org.model import ReceiveConnector, SendConnector, TransportRole
from courriel.org.store import DirectoryStore, name_key, server_row

_FIXED_RECEIVE = ("server",)
C = TypeVar("C", ReceiveConnector, SendConnector)


def receive_from_row(row: Any) -> ReceiveConnector:
    return build(
        ReceiveConnector, {**row.params, "server": row.server_name, "name": row.name}, "receive connector"
    )


def send_from_row(row: Any) -> SendConnector:
    return build(SendConnector, {**row.params, "name": row.name}, "send connector")


async def load_receive_connectors(
    conn: AsyncConnection, server: str | None = None
) -> list[tuple[int, ReceiveConnector]]:
    query = select(t.receive_connectors, t.servers.c.name.label("server_name")).join(
        t.servers, t.receive_connectors.c.server_id == t.servers.c.id
    )
    if server is not None:
        query = query.where(t.servers.c.name_key == name_key(server))
    rows = (await conn.execute(query.order_by(t.servers.c.name_key, t.receive_connectors.c.name_key))).all()
    return [(int(r.id), receive_from_row(r)) for r in rows]


async def load_send_connectors(conn: AsyncConnection) -> list[tuple[int, SendConnector]]:
    rows = (await conn.execute(select(t.send_connectors).order_by(t.send_connectors.c.name_key))).all()
    return [(int(r.id), send_from_row(r)) for r in rows]


async def insert_receive_connector(
    conn: AsyncConnection, server: Any, connector: ReceiveConnector, *, skip_existing: bool = False
) -> ReceiveConnector:
    """Validate and store a connector on `server` (a servers row); the caller holds the write transaction."""
    connector = check_receive_connector(connector, server.roles)
    existing = await load_receive_connectors(conn, server.name)
    if any(name_key(c.name) == name_key(connector.name) for _, c in existing):
        if skip_existing:
            return connector
        raise Conflict(f"server {server.name} already has a receive connector named {connector.name!r}")
    check_receive_conflicts(connector, [c for _, c in existing])
    await conn.execute(
        t.receive_connectors.insert().values(
            server_id=server.id,
            name=connector.name,
            name_key=name_key(connector.name),
            params=to_document(connector, exclude=("server", "name")),
        )
    )
    return connector


def _default_transport_role(roles: list[str]) -> TransportRole:
    if Role.CLIENT_ACCESS.value in roles:
        return TransportRole.FRONTEND
    if Role.MAILBOX.value in roles:
        return TransportRole.HUB
    return TransportRole.EDGE


async def _server_names(conn: AsyncConnection) -> dict[str, tuple[str, tuple[str, ...]]]:
    rows = (await conn.execute(select(t.servers.c.name_key, t.servers.c.name, t.servers.c.roles))).all()
    return {r.name_key: (r.name, tuple(r.roles)) for r in rows}


def _find(items: list[tuple[int, C]], name: str, missing: str) -> tuple[int, C]:
    for item in items:
        if name_key(item[1].name) == name_key(name):
            return item
    raise NotFound(missing)


class ConnectorOps(DirectoryStore):
    async def new_receive_connector(
        self, server: str, name: str, /, *, usage: str | None = None, **params: Any
    ) -> ReceiveConnector:
        """New-ReceiveConnector: `usage` (Client, Custom, Internal, Internet, Partner) presets the rest."""
        for fixed in ("server", "name"):
            if fixed in params:
                raise PermanentError(f"{fixed} is given positionally, not as a parameter")
        async with self._write() as conn:
            row = await server_row(conn, server)
            doc: dict[str, Any] = {"transport_role": _default_transport_role(list(row.roles))}
            if usage is not None:
                doc.update(usage_defaults(usage))
            doc.update(params)
            if "bindings" not in doc:
                raise PermanentError(f"receive connector {name!r} needs Bindings (IP:port)")
            connector = build(
                ReceiveConnector, {**doc, "server": row.name, "name": name}, f"receive connector {name!r}"
            )
            return await insert_receive_connector(conn, row, connector)

    async def set_receive_connector(self, server: str, name: str, /, **changes: Any) -> ReceiveConnector:
        """Set-ReceiveConnector; `name` among the changes renames the connector."""
        async with self._write() as conn:
            row = await server_row(conn, server)
            existing = await load_receive_connectors(conn, row.name)
            row_id, current = _find(
                existing, name, f"server {row.name} has no receive connector named {name!r}"
            )
            new = apply_changes(current, changes, f"receive connector {current.name!r}", fixed=_FIXED_RECEIVE)
            new = check_receive_connector(new, row.roles)
            others = [c for i, c in existing if i != row_id]
            if any(name_key(c.name) == name_key(new.name) for c in others):
                raise Conflict(f"server {row.name} already has a receive connector named {new.name!r}")
            check_receive_conflicts(new, others)
            await conn.execute(
                update(t.receive_connectors)
                .where(t.receive_connectors.c.id == row_id)
                .values(
                    name=new.name,
                    name_key=name_key(new.name),
                    params=to_document(new, exclude=("server", "name")),
                )
            )
            return new

    async def remove_receive_connector(self, server: str, name: str) -> None:
        async with self._write() as conn:
            row = await server_row(conn, server)
            row_id, _ = _find(
                await load_receive_connectors(conn, row.name),
                name,
                f"server {row.name} has no receive connector named {name!r}",
            )
            await conn.execute(t.receive_connectors.delete().where(t.receive_connectors.c.id == row_id))

    async def list_receive_connectors(self, server: str | None = None) -> list[ReceiveConnector]:
        async with self._read() as conn:
            if server is not None:
                await server_row(conn, server)
            return [c for _, c in await load_receive_connectors(conn, server)]

    async def get_receive_connector(self, server: str, name: str) -> ReceiveConnector:
        connectors = [(0, c) for c in await self.list_receive_connectors(server)]
        return _find(connectors, name, f"server {server} has no receive connector named {name!r}")[1]

    async def new_send_connector(self, name: str, /, **params: Any) -> SendConnector:
        if "name" in params:
            raise PermanentError("name is given positionally, not as a parameter")
        async with self._write() as conn:
            if "address_spaces" not in params:
                raise PermanentError(f"send connector {name!r} needs AddressSpaces")
            connector = build(SendConnector, {**params, "name": name}, f"send connector {name!r}")
            connector = check_send_connector(connector, await _server_names(conn))
            existing = await load_send_connectors(conn)
            if any(name_key(c.name) == name_key(connector.name) for _, c in existing):
                raise Conflict(f"a send connector named {connector.name!r} exists already")
            await conn.execute(
                t.send_connectors.insert().values(
                    name=connector.name,
                    name_key=name_key(connector.name),
                    params=to_document(connector, exclude=("name",)),
                )
            )
            return connector

    async def set_send_connector(self, name: str, /, **changes: Any) -> SendConnector:
        async with self._write() as conn:
            existing = await load_send_connectors(conn)
            row_id, current = _find(existing, name, f"no send connector named {name!r}")
            new = apply_changes(current, changes, f"send connector {current.name!r}")
            new = check_send_connector(new, await _server_names(conn))
            if any(name_key(c.name) == name_key(new.name) for i, c in existing if i != row_id):
                raise Conflict(f"a send connector named {new.name!r} exists already")
            await conn.execute(
                update(t.send_connectors)
                .where(t.send_connectors.c.id == row_id)
                .values(
                    name=new.name, name_key=name_key(new.name), params=to_document(new, exclude=("name",))
                )
            )
            return new

    async def remove_send_connector(self, name: str) -> None:
        async with self._write() as conn:
            row_id, _ = _find(await load_send_connectors(conn), name, f"no send connector named {name!r}")
            await conn.execute(t.send_connectors.delete().where(t.send_connectors.c.id == row_id))

    async def list_send_connectors(self) -> list[SendConnector]:
        async with self._read() as conn:
            return [c for _, c in await load_send_connectors(conn)]

    async def get_send_connector(self, name: str) -> SendConnector:
        connectors = [(0, c) for c in await self.list_send_connectors()]
        return _find(connectors, name, f"no send connector named {name!r}")[1]
