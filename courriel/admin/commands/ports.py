"""`courriel ports`: what this server listens on, per role and service, as the seed's tables show it.

With `--organization`, the whole organization's flows instead (org/flows.py computes them from a
snapshot of the directory; admin/commands/nftables.py renders them as firewall rules).

Built from the ports table (`core/ports.services_for`) for the server's roles, the receive
connectors the directory holds for this server (an administrator may have moved or added some),
and whether IMAP4 and POP3 are enabled. Each row gives the seed's port and the port actually
bound once the server's `port_offset` is added.
"""

from __future__ import annotations

from typing import Any

from courriel.admin.commands.context import Admin
from courriel.admin.commands.nftables import ruleset
from courriel.core.errors import NotFound
from courriel.core.ports import Role, Service, offset_port, services_for
from courriel.org.defaults import SERVICE_ROLE
from courriel.org.flows import SERVICE_OF_ROLE, Flow, organization_flows
from courriel.org.ipranges import parse_binding
from courriel.org.model import AuthMechanism, ReceiveConnector, Server
from courriel.org.snapshot import DirectorySnapshot

# Seed services this version does not run yet: listed (they are part of the seed's table) but
# shown as NotAvailable.
NOT_YET_BUILT = frozenset({"edge-transport", "edgesync-directory"})
# IMAP4 and POP3 are off until an administrator enables them (front end and back end together, §3).
_PROTOCOL_OF_SERVICE = {
    "imap-proxy": "imap",
    "imap-backend": "imap",
    "pop3-proxy": "pop",
    "pop3-backend": "pop",
}


def _row(
    role: str,
    service: str,
    connector: str | None,
    address: str,
    port: int,
    offset: int,
    tls: str,
    status: str,
    purpose: str,
) -> dict[str, Any]:
    return {
        "role": role,
        "service": service,
        "connector": connector,
        "address": address,
        "port": port,
        "bound_port": offset_port(port, offset),
        "tls": tls,
        "status": status,
        "purpose": purpose,
    }


def connector_rows(
    role: Role, service: str, connector: ReceiveConnector, purpose: str, offset: int
) -> list[dict[str, Any]]:
    """One row per port the connector binds (a connector usually binds one port on IPv4 and IPv6)."""
    by_port: dict[int, list[str]] = {}
    for text in connector.bindings:
        binding = parse_binding(text)
        by_port.setdefault(binding.port, []).append(str(binding.address))
    if connector.implicit_tls:
        tls = "implicit"
    elif AuthMechanism.TLS in connector.auth_mechanisms:
        tls = "starttls"
    else:
        tls = "none"
    status = "Enabled" if connector.enabled else "Disabled"
    return [
        _row(role.value, service, connector.name, ", ".join(addresses), port, offset, tls, status, purpose)
        for port, addresses in sorted(by_port.items())
    ]


async def listening_ports(admin: Admin) -> list[dict[str, Any]]:
    config = admin.config
    directory = admin.directory
    try:
        connectors = {c.name.casefold(): c for c in await directory.list_receive_connectors(config.name)}
    except NotFound:
        connectors = {}  # not registered yet: the seed's services still say what it would run
    enabled = {p: (await directory.get_protocol_settings(p)).enabled for p in ("imap", "pop")}
    listen = ", ".join(config.listen)
    rows: list[dict[str, Any]] = []
    service: Service
    for service in services_for(config.roles):
        if service.connector is not None:
            name = service.connector.format(server=config.name)
            found = connectors.pop(name.casefold(), None)
            if found is not None:
                rows += connector_rows(service.role, service.name, found, service.purpose, config.port_offset)
            else:
                rows.append(
                    _row(
                        service.role.value,
                        service.name,
                        name,
                        listen,
                        service.port,
                        config.port_offset,
                        service.tls,
                        "NoConnector",
                        service.purpose,
                    )
                )
            continue
        protocol = _PROTOCOL_OF_SERVICE.get(service.name)
        if service.name in NOT_YET_BUILT:
            status = "NotAvailable"
        else:
            status = "Enabled" if protocol is None or enabled[protocol] else "Disabled"
        rows.append(
            _row(
                service.role.value,
                service.name,
                None,
                listen,
                service.port,
                config.port_offset,
                service.tls,
                status,
                service.purpose,
            )
        )
    for extra in connectors.values():  # connectors an administrator added
        rows += connector_rows(
            SERVICE_ROLE[extra.transport_role],
            SERVICE_OF_ROLE[extra.transport_role],
            extra,
            extra.comment or "Receive connector added by an administrator",
            config.port_offset,
        )
    return rows


async def organization_ports(
    admin: Admin, server: str | None = None
) -> tuple[DirectorySnapshot, list[Flow], list[Server]]:
    """One directory snapshot, its flows (those `server` sends or receives, when given) and the servers concerned."""
    snapshot = await admin.directory.snapshot()
    servers = sorted(snapshot.servers(), key=lambda s: s.name.casefold())
    if server is not None:
        found = snapshot.server(server)
        if found is None:
            raise NotFound(f"no server named {server!r} in the directory")
        servers = [found]
    return snapshot, organization_flows(snapshot, None if server is None else servers[0].name), servers


async def organization_nftables(admin: Admin, server: str | None = None) -> str:
    """The `nft -f` ruleset that allows exactly the organization's flows to its servers."""
    snapshot, flows, servers = await organization_ports(admin, server)
    scope = f"server {servers[0].name}" if server is not None else "every server"
    heading = (
        f"Courriel: the flows to {scope} of {snapshot.organization or 'the organization'}, "
        f"directory version {snapshot.version} (courriel ports --organization)"
    )
    return ruleset(flows, servers, heading)
