"""Routes inside the organization: the implicit intra-organization send connector, the outbound proxy.

A mailbox whose database is mounted on another Mailbox server is relayed to that server's
Transport service ("Default <server>": 25, or 2525 where Client Access shares the computer) — the
seed's implicit, invisible intra-organization send connector. A send connector with
FrontEndProxyEnabled sends through "Outbound Proxy Frontend <server>" (717) of a Client Access
server of our site, this one first when it has the role. Where a server listens comes from its
receive connectors in the directory (an administrator may have moved a binding), then from the
seed's ports; its address from the binding when it names one, else the server's registered
addresses, else its FQDN. Every port has the server's port_offset added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from courriel.core import ports
from courriel.core.ports import Role
from courriel.org.ipranges import Binding, parse_binding
from courriel.org.model import MailboxDatabase, ReceiveConnector, Server

INTRA_ORG_CONNECTOR = "Intra-Organization SMTP Send Connector"
OUTBOUND_PROXY_PORT = 717


class Topology(Protocol):
    """The directory as routing inside the organization reads it (org/snapshot.py has it all)."""

    def database(self, name: str) -> MailboxDatabase | None: ...
    def server(self, name: str) -> Server | None: ...
    def servers(self) -> Sequence[Server]: ...
    def receive_connectors(self, server: str) -> Sequence[ReceiveConnector]: ...


@dataclass(frozen=True, slots=True)
class Target:
    """One place to connect to: the server's name (for logs), a host or IP, a port."""

    server: str
    host: str
    port: int


def same_server(a: str | None, b: str) -> bool:
    return a is not None and a.casefold() == b.casefold()


def mounted_elsewhere(database: str, topology: Topology, server: str) -> str | None:
    """The other Mailbox server where `database` is active, or None (here, or mounted nowhere)."""
    db = topology.database(database)
    if db is None or not db.mounted or db.server is None or same_server(db.server, server):
        return None
    return db.server


def receive_connector(connectors: Sequence[ReceiveConnector], name: str) -> ReceiveConnector | None:
    """The receive connector called `name`, enabled or not (directory names are case-insensitive)."""
    return next((c for c in connectors if c.name.casefold() == name.casefold()), None)


def connector_targets(server: Server, connector: ReceiveConnector | None, seed_port: int | None) -> list[Target]:
    """Where `server` listens for `connector`: on each of its bindings (the binding's address, or
    for a wildcard each of the server's addresses, else its FQDN), or on `seed_port` when there
    is no connector or it has no binding (nowhere without a seed port). port_offset added."""
    addresses = list(server.addresses) or [server.fqdn]
    bindings: list[Binding | None] = [parse_binding(b) for b in connector.bindings] if connector is not None else []
    if not bindings and seed_port is None:
        return []
    out: list[Target] = []
    for binding in bindings or [None]:
        port = ports.offset_port(binding.port if binding is not None else seed_port or 0, server.port_offset)
        hosts = addresses if binding is None or binding.is_wildcard else [str(binding.address)]
        out += [Target(server.name, host, port) for host in hosts if Target(server.name, host, port) not in out]
    return out


def _targets(server: Server, topology: Topology, name: str, seed_port: int) -> list[Target]:
    """Where `server` runs receive connector `name`; the seed's port when that is disabled."""
    connector = receive_connector(topology.receive_connectors(server.name), name)
    return connector_targets(server, connector if connector is not None and connector.enabled else None, seed_port)


def mailbox_server_targets(topology: Topology, name: str) -> list[Target]:
    """Where the Transport service of Mailbox server `name` listens; empty if it is unknown."""
    server = topology.server(name)
    if server is None or Role.MAILBOX.value not in server.roles:
        return []
    seed = ports.transport_port(frozenset(Role(r) for r in server.roles))
    return _targets(server, topology, ports.DEFAULT_TRANSPORT.format(server=server.name), seed)


def outbound_proxy_targets(topology: Topology, local: str) -> list[Target]:
    """"Outbound Proxy Frontend" of the Client Access servers of our site, this server first."""
    me = topology.server(local)
    if me is None:
        return []
    proxies = [
        s for s in topology.servers() if Role.CLIENT_ACCESS.value in s.roles and s.site.casefold() == me.site.casefold()
    ]
    proxies.sort(key=lambda s: (not same_server(s.name, local), s.name.casefold()))
    out: list[Target] = []
    for server in proxies:
        name = ports.OUTBOUND_PROXY_FRONTEND.format(server=server.name)
        out += _targets(server, topology, name, OUTBOUND_PROXY_PORT)
    return out
