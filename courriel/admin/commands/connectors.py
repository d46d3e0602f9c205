"""Receive and send connectors as admin commands, with Exchange-style identities and text parameters.

A receive connector is named `SERVER\\Name` (as Get-ReceiveConnector shows it) or just `Name` on
this server.
"""

from __future__ import annotations

from collections.abc import Mapping

from courriel.admin.commands.context import Admin
from courriel.admin.commands.params import parse_params
from courriel.org.model import ReceiveConnector, SendConnector


def split_identity(identity: str, server: str | None, default_server: str) -> tuple[str, str]:
    """`SERVER\\Name` → (SERVER, Name); a bare name is on `server`, else on this server."""
    if "\\" in identity:
        prefix, name = identity.split("\\", 1)
        return prefix, name
    return server or default_server, identity


def connector_identity(connector: ReceiveConnector) -> str:
    return f"{connector.server}\\{connector.name}"


async def new_receive_connector(
    admin: Admin,
    identity: str,
    raw: Mapping[str, str],
    *,
    server: str | None = None,
    usage: str | None = None,
) -> ReceiveConnector:
    server_name, name = split_identity(identity, server, admin.config.name)
    params = parse_params(ReceiveConnector, raw)
    return await admin.directory.new_receive_connector(server_name, name, usage=usage, **params)


async def set_receive_connector(
    admin: Admin, identity: str, raw: Mapping[str, str], *, server: str | None = None
) -> ReceiveConnector:
    server_name, name = split_identity(identity, server, admin.config.name)
    return await admin.directory.set_receive_connector(
        server_name, name, **parse_params(ReceiveConnector, raw)
    )


async def new_send_connector(admin: Admin, name: str, raw: Mapping[str, str]) -> SendConnector:
    params = parse_params(SendConnector, raw)
    if params.get("smart_hosts") and "dns_routing_enabled" not in params:
        params["dns_routing_enabled"] = False  # smart hosts mean no MX routing, as the EAC sets it
    return await admin.directory.new_send_connector(name, **params)


async def set_send_connector(admin: Admin, name: str, raw: Mapping[str, str]) -> SendConnector:
    return await admin.directory.set_send_connector(name, **parse_params(SendConnector, raw))
