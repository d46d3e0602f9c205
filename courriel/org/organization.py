"""Organization-wide settings: the organization's name, Set-TransportConfig, Set-ImapSettings, Set-PopSettings.

They live in the directory, not in server files (STYLE.md habit 6), so every server of the
organization sees the same values. Each is one JSON document under a key in `org_settings`;
an unset document reads as the model's defaults (IMAP4 and POP3 disabled, as in the seed).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.core.errors import Conflict, NotFound, PermanentError
from courriel.org import schema as t
from courriel.org.codec import Bounds, apply_changes, build, check_bounds, to_document
from courriel.org.model import MB, ProtocolSettings, TransportConfig
from courriel.org.store import DirectoryStore, check_name

T = TypeVar("T")

ORGANIZATION = "organization"
TRANSPORT_CONFIG = "transport_config"
PROTOCOLS = {"imap": "imap_settings", "pop": "pop_settings"}

DAY = 86400.0
MAX_INT = 2147483647

# Set-TransportConfig ranges (cmdlet reference).
TRANSPORT_BOUNDS: Bounds = {
    "max_receive_size": (1, 2048 * MB),
    "max_send_size": (1, 2048 * MB),
    "max_recipient_envelope_limit": (1, MAX_INT),
    "message_expiration_timeout": (5.0, 90 * DAY),
    "delay_notification_timeout": (1.0, 30 * DAY),
    "message_retry_interval": (1.0, DAY),
    "transient_failure_retry_interval": (1.0, 12 * 3600.0),
    "transient_failure_retry_count": (0, 15),
    "max_hop_count": (1, 500),
}

# Set-ImapSettings / Set-PopSettings ranges (cmdlet reference).
PROTOCOL_BOUNDS: Bounds = {
    "authenticated_connection_timeout": (30.0, DAY),
    "pre_authenticated_connection_timeout": (10.0, 3600.0),
    "max_connections": (1, MAX_INT),
    "max_connections_per_user": (1, MAX_INT),
    "max_connection_from_single_ip": (1, MAX_INT),
    "max_command_size": (1024, 16384),
}

# HostName:Port:[TLS|SSL] (Set-ImapSettings -ExternalConnectionSettings).
_CONNECTION_SETTING = re.compile(
    r"(?P<host>[^:\s]+):(?P<port>\d{1,5})(?::(?P<enc>TLS|SSL))?\Z", re.IGNORECASE
)


def check_connection_setting(text: str, what: str) -> str:
    match = _CONNECTION_SETTING.match(text.strip())
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise PermanentError(f"{what}: {text!r} is not HostName:Port:[TLS|SSL]")
    enc = f":{match['enc'].upper()}" if match["enc"] else ""
    return f"{match['host']}:{int(match['port'])}{enc}"


def protocol_key(proto: str) -> str:
    try:
        return PROTOCOLS[proto.lower()]
    except KeyError:
        raise PermanentError(f"protocol {proto!r} is not imap or pop") from None


async def read_setting(conn: AsyncConnection, key: str) -> Any:
    return (
        await conn.execute(select(t.settings.c.value).where(t.settings.c.key == key))
    ).scalar_one_or_none()


async def write_setting(conn: AsyncConnection, key: str, value: Any) -> None:
    updated = await conn.execute(t.settings.update().where(t.settings.c.key == key).values(value=value))
    if updated.rowcount == 0:
        await conn.execute(t.settings.insert().values(key=key, value=value))


class OrganizationOps(DirectoryStore):
    async def init_organization(self, name: str) -> None:
        """Name the organization; a directory holds exactly one."""
        name = check_name(name, "organization")
        async with self._write() as conn:
            existing = await read_setting(conn, ORGANIZATION)
            if existing is not None:
                raise Conflict(f"the directory already holds the organization {existing['name']!r}")
            await write_setting(conn, ORGANIZATION, {"name": name})

    async def organization_name(self) -> str | None:
        async with self._read() as conn:
            doc = await read_setting(conn, ORGANIZATION)
        return None if doc is None else str(doc["name"])

    async def require_organization(self) -> str:
        name = await self.organization_name()
        if name is None:
            raise NotFound("the directory holds no organization yet: run `courriel init` first")
        return name

    async def get_transport_config(self) -> TransportConfig:
        async with self._read() as conn:
            return build(
                TransportConfig, await read_setting(conn, TRANSPORT_CONFIG) or {}, "transport config"
            )

    async def set_transport_config(self, **changes: Any) -> TransportConfig:
        async with self._write() as conn:
            current = build(
                TransportConfig, await read_setting(conn, TRANSPORT_CONFIG) or {}, "transport config"
            )
            new = apply_changes(current, changes, "transport config")
            check_bounds(new, TRANSPORT_BOUNDS, "transport config")
            await write_setting(conn, TRANSPORT_CONFIG, to_document(new))
        return new

    async def get_protocol_settings(self, proto: str) -> ProtocolSettings:
        key = protocol_key(proto)
        async with self._read() as conn:
            return build(ProtocolSettings, await read_setting(conn, key) or {}, f"{proto} settings")

    async def set_protocol_settings(self, proto: str, **changes: Any) -> ProtocolSettings:
        key = protocol_key(proto)
        what = f"{proto.lower()} settings"
        async with self._write() as conn:
            current = build(ProtocolSettings, await read_setting(conn, key) or {}, what)
            new = apply_changes(current, changes, what)
            check_bounds(new, PROTOCOL_BOUNDS, what)
            new = apply_changes(
                new,
                {
                    "external_connection_settings": [
                        check_connection_setting(s, f"{what} ExternalConnectionSettings")
                        for s in new.external_connection_settings
                    ],
                    "internal_connection_settings": [
                        check_connection_setting(s, f"{what} InternalConnectionSettings")
                        for s in new.internal_connection_settings
                    ],
                },
                what,
            )
            if new.banner is not None and not new.banner.strip():
                raise PermanentError(f"{what} Banner cannot be blank (use no banner for the default)")
            if new.x509_certificate_name is not None and not new.x509_certificate_name.strip():
                raise PermanentError(f"{what} X509CertificateName cannot be blank")
            await write_setting(conn, key, to_document(new))
        return new
