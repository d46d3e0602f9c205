"""An immutable, in-memory view of the whole directory at one version, for the hot paths.

RCPT TO checks, the categorizer, routing and the protocol front ends ask it instead of SQL: every
lookup is a dict access. It is built in one read transaction (REPEATABLE READ on PostgreSQL), so
it never mixes two versions of the directory. org/cache.py swaps in a new one when the directory
version moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from courriel.org.model import (
    AcceptedDomain,
    MailboxDatabase,
    ProtocolSettings,
    ReceiveConnector,
    Recipient,
    SendConnector,
    Server,
    TransportConfig,
)


def address_key(address: str) -> str:
    """The proxy-address lookup key, the same as core.address.Address.key: lower(local)@lower(domain)."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local.lower()}@{domain.lower()}"


@dataclass(frozen=True, slots=True)
class DirectorySnapshot:
    version: int
    organization: str | None
    transport_config: TransportConfig
    imap_settings: ProtocolSettings
    pop_settings: ProtocolSettings
    _domains: Mapping[str, AcceptedDomain]
    _by_address: Mapping[str, Recipient]
    _by_id: Mapping[int, Recipient]
    _members: Mapping[int, tuple[int, ...]]
    _receive: Mapping[str, tuple[ReceiveConnector, ...]]
    _send: tuple[SendConnector, ...]
    _databases: Mapping[str, MailboxDatabase]
    _servers: Mapping[str, Server]

    @classmethod
    def build(
        cls,
        *,
        version: int,
        organization: str | None,
        transport_config: TransportConfig,
        imap_settings: ProtocolSettings,
        pop_settings: ProtocolSettings,
        domains: list[AcceptedDomain],
        recipients: list[Recipient],
        memberships: list[tuple[int, int]],
        receive_connectors: list[ReceiveConnector],
        send_connectors: list[SendConnector],
        databases: list[MailboxDatabase],
        servers: list[Server],
    ) -> DirectorySnapshot:
        members: dict[int, list[int]] = {}
        for group_id, member_id in memberships:
            members.setdefault(group_id, []).append(member_id)
        receive: dict[str, list[ReceiveConnector]] = {}
        for connector in receive_connectors:
            receive.setdefault(connector.server.casefold(), []).append(connector)
        return cls(
            version=version,
            organization=organization,
            transport_config=transport_config,
            imap_settings=imap_settings,
            pop_settings=pop_settings,
            _domains=MappingProxyType({d.name: d for d in domains}),
            _by_address=MappingProxyType({address_key(a): r for r in recipients for a in r.addresses}),
            _by_id=MappingProxyType({r.id: r for r in recipients}),
            _members=MappingProxyType({g: tuple(m) for g, m in members.items()}),
            _receive=MappingProxyType({s: tuple(c) for s, c in receive.items()}),
            _send=tuple(send_connectors),
            _databases=MappingProxyType({d.name.casefold(): d for d in databases}),
            _servers=MappingProxyType({s.name.casefold(): s for s in servers}),
        )

    def accepted_domain(self, domain: str) -> AcceptedDomain | None:
        """Exact match only: a subdomain is accepted when it is listed itself."""
        return self._domains.get(domain.strip().lower())

    def accepted_domains(self) -> tuple[AcceptedDomain, ...]:
        return tuple(self._domains.values())

    def default_domain(self) -> AcceptedDomain | None:
        return next((d for d in self._domains.values() if d.default), None)

    def recipient(self, address: str) -> Recipient | None:
        """By any proxy address, case-insensitively as Exchange resolves recipients."""
        return self._by_address.get(address_key(address))

    def recipient_by_id(self, recipient_id: int) -> Recipient | None:
        return self._by_id.get(recipient_id)

    def recipients(self) -> tuple[Recipient, ...]:
        return tuple(self._by_id.values())

    def members(self, group_id: int) -> tuple[Recipient, ...]:
        """A group's direct members; nested groups appear as members (the categorizer expands them)."""
        return tuple(self._by_id[m] for m in self._members.get(group_id, ()) if m in self._by_id)

    def receive_connectors(self, server: str) -> tuple[ReceiveConnector, ...]:
        return self._receive.get(server.casefold(), ())

    def send_connectors(self) -> tuple[SendConnector, ...]:
        return self._send

    def database(self, name: str) -> MailboxDatabase | None:
        return self._databases.get(name.casefold())

    def databases(self) -> tuple[MailboxDatabase, ...]:
        return tuple(self._databases.values())

    def server(self, name: str) -> Server | None:
        return self._servers.get(name.casefold())

    def servers(self) -> tuple[Server, ...]:
        return tuple(self._servers.values())
