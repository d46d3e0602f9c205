"""The organization's port and flow table, computed from the directory (DESIGN.md §1).

Who talks to whom, on which port, under which connector, in the layout of the seed's three tables:
clients and services (to Client Access), mail flow without an Edge server, mail flow with Edge
Transport servers. Every row comes from the directory as it stands: servers (roles, site, addresses,
port_offset), receive connectors (bindings, remote IP ranges; a disabled or removed connector
listens nowhere, so it has no flow), send connectors (address spaces, smart hosts, port,
FrontEndProxyEnabled, source servers) and whether IMAP4 and POP3 are enabled. Pure: a
DirectorySnapshot in, flows out; `courriel ports --organization` prints them and
admin/commands/nftables.py turns them into firewall rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from courriel.core import ports
from courriel.core.ports import Role, Service
from courriel.org.defaults import ALL_IPV4
from courriel.org.ipranges import parse_binding, parse_ip_range
from courriel.org.model import PermissionGroup, ReceiveConnector, SendConnector, Server, TransportRole
from courriel.org.snapshot import DirectorySnapshot

CLIENTS = "Clients and services"
MAIL_FLOW = "Mail flow without an Edge server"
EDGE_FLOW = "Mail flow with an Edge Transport server"
SECTIONS = (CLIENTS, MAIL_FLOW, EDGE_FLOW)

ALL_IPV6 = "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
# The service that runs a receive connector of each transport role.
SERVICE_OF_ROLE = {
    TransportRole.FRONTEND: "frontend-transport",
    TransportRole.HUB: "transport",
    TransportRole.EDGE: "edge-transport",
}
_WHOLE_FAMILY = {parse_ip_range(ALL_IPV4): "0.0.0.0/0", parse_ip_range(ALL_IPV6): "::/0"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a flow: a server of the organization, or the outside ("Internet", "DNS", smart hosts)."""

    name: str
    addresses: tuple[str, ...] = ()  # IP addresses, ranges, CIDR blocks or host names; () = any
    server: bool = False

    def __str__(self) -> str:
        return f"{self.name} ({', '.join(self.addresses) if self.addresses else 'any'})"


INTERNET = Endpoint("Internet")
DNS = Endpoint("DNS")


@dataclass(frozen=True, slots=True)
class Flow:
    section: str
    purpose: str
    protocol: str  # "tcp" or "udp"
    port: int  # as the seed and the directory state it
    bound_port: int  # on the wire: a destination server's port_offset added
    source: Endpoint
    destination: Endpoint
    connector: str | None = None  # the receive connector that listens, or the send connector that leaves
    service: str | None = None  # the destination's service (core/ports), when it is ours

    def record(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "purpose": self.purpose,
            "protocol": self.protocol,
            "port": self.port,
            "bound_port": self.bound_port,
            "source": self.source.name,
            "source_addresses": list(self.source.addresses),
            "destination": self.destination.name,
            "destination_addresses": list(self.destination.addresses),
            "connector": self.connector,
            "service": self.service,
        }


def endpoint(server: Server) -> Endpoint:
    return Endpoint(server.name, server.addresses, server=True)


def remote_sources(connector: ReceiveConnector) -> Endpoint:
    """The outside a connector accepts: its RemoteIPRanges, or any when they cover everything."""
    shown = tuple(_WHOLE_FAMILY.get(parse_ip_range(r), r) for r in connector.remote_ip_ranges)
    return INTERNET if set(shown) >= {"0.0.0.0/0", "::/0"} else Endpoint("Internet", shown)


def _runs(server: Server, role: Role) -> bool:
    return role.value in server.roles


class _Org:
    """The directory, indexed the way the flow rules ask it."""

    def __init__(self, snapshot: DirectorySnapshot) -> None:
        self.snapshot = snapshot
        servers = sorted(snapshot.servers(), key=lambda s: s.name.casefold())
        self.client_access = [s for s in servers if _runs(s, Role.CLIENT_ACCESS)]
        self.mailbox = [s for s in servers if _runs(s, Role.MAILBOX)]
        self.edge = [s for s in servers if _runs(s, Role.EDGE)]
        self.edge_sites = {s.site.casefold() for s in self.edge}
        self.imap = snapshot.imap_settings.enabled
        self.pop = snapshot.pop_settings.enabled

    def connector(self, server: Server, template: str) -> ReceiveConnector | None:
        """A server's default connector by the seed's name, if it exists and is enabled."""
        name = template.format(server=server.name).casefold()
        found = next(
            (c for c in self.snapshot.receive_connectors(server.name) if c.name.casefold() == name), None
        )
        return found if found is not None and found.enabled else None

    def added_connectors(self, server: Server) -> list[ReceiveConnector]:
        """Enabled connectors an administrator created (not one of the seed's defaults)."""
        defaults = {
            s.connector.format(server=server.name).casefold()
            for s in ports.SERVICES
            if s.connector is not None
        }
        return [
            c
            for c in self.snapshot.receive_connectors(server.name)
            if c.enabled and c.name.casefold() not in defaults
        ]


def listeners(server: Server, connector: ReceiveConnector) -> list[tuple[int, Endpoint]]:
    """(port, where) per port the connector binds: its own addresses, or the server's for a wildcard."""
    by_port: dict[int, list[str]] = {}
    for text in connector.bindings:
        binding = parse_binding(text)
        found = by_port.setdefault(binding.port, [])
        found += server.addresses if binding.is_wildcard else [str(binding.address)]
    return [
        (port, Endpoint(server.name, tuple(dict.fromkeys(addresses)), server=True))
        for port, addresses in sorted(by_port.items())
    ]


def _to_connector(
    org: _Org,
    section: str,
    purpose: str,
    source: Endpoint,
    server: Server,
    template: str,
) -> Iterator[Flow]:
    """Flows to a default receive connector of `server`, one per port it binds."""
    connector = org.connector(server, template)
    if connector is not None:
        yield from _connector_flows(section, purpose, source, server, connector)


def _connector_flows(
    section: str, purpose: str, source: Endpoint, server: Server, connector: ReceiveConnector
) -> Iterator[Flow]:
    """Flows to this receive connector of `server`, one per port it binds."""
    for port, where in listeners(server, connector):
        yield Flow(
            section,
            purpose,
            "tcp",
            port,
            ports.offset_port(port, server.port_offset),
            source,
            where,
            connector.name,
            SERVICE_OF_ROLE[connector.transport_role],
        )


def _to_service(section: str, source: Endpoint, server: Server, service: Service) -> Flow:
    return Flow(
        section,
        service.purpose,
        "tcp",
        service.port,
        ports.offset_port(service.port, server.port_offset),
        source,
        endpoint(server),
        None,
        service.name,
    )


def _services(*names: str) -> list[Service]:
    """The seed's connector-less services of these names, in the order asked."""
    return [s for name in names for s in ports.SERVICES if s.name == name and s.connector is None]


def _protocols(org: _Org, front_end: bool) -> list[Service]:
    """HTTP always; IMAP4 and POP3 only once enabled (the seed: disabled by default)."""
    suffix = "proxy" if front_end else "backend"
    names = [f"http-{suffix}"]
    names += [f"imap-{suffix}"] if org.imap else []
    names += [f"pop3-{suffix}"] if org.pop else []
    return _services(*names)


def client_flows(org: _Org) -> Iterator[Flow]:
    """The seed's first table: clients anywhere outside → each Client Access server."""
    for cas in org.client_access:
        for service in _protocols(org, front_end=True):
            yield _to_service(CLIENTS, INTERNET, cas, service)
        frontend = org.connector(cas, ports.CLIENT_FRONTEND)
        if frontend is not None:
            yield from _connector_flows(
                CLIENTS, "Authenticated SMTP client submission", remote_sources(frontend), cas, frontend
            )


def _transport(org: _Org, source: Endpoint, mailbox: Server, purpose: str) -> Iterator[Flow]:
    """The implicit intra-organization send connector to "Default <mailbox>" (25, or 2525 co-located)."""
    yield from _to_connector(org, MAIL_FLOW, purpose, source, mailbox, ports.DEFAULT_TRANSPORT)


def inbound_flows(org: _Org) -> Iterator[Flow]:
    for cas in org.client_access:
        door = org.connector(cas, ports.DEFAULT_FRONTEND)
        # Where the site has an Edge, the Edge takes the Internet's mail.
        if door is not None and cas.site.casefold() not in org.edge_sites:
            yield from _connector_flows(
                MAIL_FLOW, "Inbound mail from the Internet (anonymous)", remote_sources(door), cas, door
            )
    for cas in org.client_access:
        for mailbox in org.mailbox:
            yield from _transport(
                org,
                endpoint(cas),
                mailbox,
                "Inbound mail relayed to a Mailbox server (intra-organization send connector)",
            )
            yield from _to_connector(
                org,
                MAIL_FLOW,
                "Authenticated submissions proxied by Client Frontend",
                endpoint(cas),
                mailbox,
                ports.CLIENT_PROXY,
            )
    for sender in org.mailbox:
        for mailbox in org.mailbox:
            if mailbox.name != sender.name:
                yield from _transport(
                    org,
                    endpoint(sender),
                    mailbox,
                    "Mail between Mailbox servers (intra-organization send connector)",
                )


def next_hop(connector: SendConnector) -> Endpoint:
    """Where a send connector's mail leaves for: MX lookups on the Internet, or its smart hosts."""
    return INTERNET if connector.dns_routing_enabled else Endpoint("Smart hosts", connector.smart_hosts)


def _sources(org: _Org, connector: SendConnector) -> list[Server]:
    """SourceTransportServers, or every Mailbox server when the connector names none (as routing does)."""
    if not connector.source_transport_servers:
        return org.mailbox
    named = {s.casefold() for s in connector.source_transport_servers}
    return [s for s in (*org.mailbox, *org.edge) if s.name.casefold() in named]


def outbound_flows(org: _Org) -> Iterator[Flow]:
    """One set of flows per enabled send connector: direct, or through "Outbound Proxy Frontend" (717)."""
    for connector in org.snapshot.send_connectors():
        if not connector.enabled:
            continue
        spaces = ", ".join(pattern for pattern, _ in connector.address_spaces)
        hop = next_hop(connector)
        leaving: dict[str, Server] = {}
        for source in _sources(org, connector):
            if not connector.front_end_proxy_enabled or _runs(source, Role.EDGE):
                leaving.setdefault(source.name, source)
                continue
            for cas in (c for c in org.client_access if c.site.casefold() == source.site.casefold()):
                yield from _to_connector(
                    org,
                    MAIL_FLOW,
                    f"Outbound mail to {spaces} handed to Client Access (FrontEndProxyEnabled)",
                    endpoint(source),
                    cas,
                    ports.OUTBOUND_PROXY_FRONTEND,
                )
                leaving.setdefault(cas.name, cas)
        for server in leaving.values():
            yield Flow(
                MAIL_FLOW,
                f"Outbound mail to {spaces}",
                "tcp",
                connector.port,
                connector.port,
                endpoint(server),
                hop,
                connector.name,
            )


def back_end_flows(org: _Org) -> Iterator[Flow]:
    """Client Access proxies HTTP, IMAP4 and POP3 to the back ends of the user's Mailbox server."""
    for cas in org.client_access:
        for mailbox in org.mailbox:
            for service in _protocols(org, front_end=False):
                yield _to_service(MAIL_FLOW, endpoint(cas), mailbox, service)


def dns_flows(servers: Iterable[Server], section: str) -> Iterator[Flow]:
    """Next-hop name resolution must work on every transport server (the seed's rules)."""
    for server in servers:
        for protocol in ("udp", "tcp"):
            yield Flow(
                section,
                "Next-hop DNS resolution",
                protocol,
                ports.DNS_PORT,
                ports.DNS_PORT,
                endpoint(server),
                DNS,
            )


def edge_flows(org: _Org) -> Iterator[Flow]:
    """The seed's third table, for each Edge and the Mailbox servers of the site it is subscribed to."""
    for edge in org.edge:
        site = edge.site
        members = [m for m in org.mailbox if m.site.casefold() == site.casefold()]
        door = org.connector(edge, ports.EDGE_DEFAULT)
        if door is not None:
            yield from _connector_flows(
                EDGE_FLOW, "Inbound mail from the Internet (anonymous)", remote_sources(door), edge, door
            )
        inbound = ports.EDGESYNC_INBOUND.format(site=site)
        for mailbox in members:
            # A co-located server takes the Edge's mail at its Front End Transport service first.
            template = (
                ports.DEFAULT_FRONTEND if _runs(mailbox, Role.CLIENT_ACCESS) else ports.DEFAULT_TRANSPORT
            )
            yield from _to_connector(
                org,
                EDGE_FLOW,
                f"Inbound mail from the Edge (send connector {inbound})",
                endpoint(edge),
                mailbox,
                template,
            )
        for mailbox in members:
            yield from _to_connector(
                org,
                EDGE_FLOW,
                "Outbound mail to the Edge (intra-organization send connector)",
                endpoint(mailbox),
                edge,
                ports.EDGE_DEFAULT,
            )
        yield Flow(
            EDGE_FLOW,
            "Outbound mail from the Edge to the Internet",
            "tcp",
            ports.SMTP_PORT,
            ports.SMTP_PORT,
            endpoint(edge),
            INTERNET,
            ports.EDGESYNC_TO_INTERNET.format(site=site),
        )
        for mailbox in members:
            for sync in _services("edgesync-directory"):
                yield _to_service(EDGE_FLOW, endpoint(mailbox), edge, sync)
    yield from dns_flows(org.edge, EDGE_FLOW)


def added_flows(org: _Org) -> Iterator[Flow]:
    """Receive connectors an administrator created, in the table their clients belong to."""
    for server in sorted(org.snapshot.servers(), key=lambda s: s.name.casefold()):
        for connector in org.added_connectors(server):
            if connector.transport_role == TransportRole.EDGE:
                section = EDGE_FLOW
            elif (
                connector.transport_role == TransportRole.FRONTEND
                and PermissionGroup.EXCHANGE_USERS in connector.permission_groups
            ):
                section = CLIENTS
            else:
                section = MAIL_FLOW
            purpose = connector.comment or "Receive connector added by an administrator"
            yield from _connector_flows(section, purpose, remote_sources(connector), server, connector)


def organization_flows(snapshot: DirectorySnapshot, server: str | None = None) -> list[Flow]:
    """Every flow of the organization in the seed's order; `server` keeps those it sends or receives."""
    org = _Org(snapshot)
    transport_servers = [*org.client_access, *(m for m in org.mailbox if m not in org.client_access)]
    flows = [
        *client_flows(org),
        *inbound_flows(org),
        *outbound_flows(org),
        *back_end_flows(org),
        *dns_flows(transport_servers, MAIL_FLOW),
        *(edge_flows(org) if org.edge else ()),
        *added_flows(org),
    ]
    flows.sort(key=lambda f: SECTIONS.index(f.section))  # stable: the seed's order within a table
    if server is not None:
        key = server.casefold()
        flows = [
            f
            for f in flows
            if (f.source.server and f.source.name.casefold() == key)
            or (f.destination.server and f.destination.name.casefold() == key)
        ]
    return flows
