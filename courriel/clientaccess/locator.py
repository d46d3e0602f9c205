"""Which Mailbox server a front end talks to, and where: recipient → database → server → address, port.

Exchange's Client Access server finds the Mailbox server that holds the active copy of the
user's database and proxies to its back-end service (research/exchange2013-facts.md §3,
ProxyTargetPort): here the directory says which server a database is mounted on, that server's
`addresses` say where other servers reach it (its FQDN when it listens on every address), and
the port is that of the ports table plus that server's `port_offset`. A back end on this very
server is reached on one of our own listen addresses. Each endpoint also names the local address
the connection leaves from: our own listen address of its family (transport/deliver/source.py).

- IMAP4/POP3 (`locate`): the implicit-TLS back-end port (1993, 1995).
- SMTP (`smtp_endpoints`): the Transport service's receive connector of the seed's table,
  "Default <server>" for mail from Default Frontend and "Client Proxy <server>" for submissions
  from Client Frontend; the port is the connector's own binding (25, or 2525 where Client Access
  shares the computer), its ImplicitTls says how to speak to it. The servers that hold the
  recipients' databases come first; any other Mailbox server of our site follows, since every
  Mailbox transport routes mail on within the organization.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from courriel.core.ports import SERVICES, Role, offset_port, services_for
from courriel.org.model import Recipient, Server
from courriel.org.snapshot import DirectorySnapshot
from courriel.transport.deliver.source import source_address
from courriel.transport.route.organization import connector_targets, receive_connector

WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def backend_port(service: str, *, tls: bool = True) -> int:
    """A Mailbox back-end service's port in the ports table ("imap-backend", "http-backend" …):
    its implicit-TLS one (1993, 444), or with `tls=False` its plain one (81)."""
    for svc in SERVICES:
        if svc.role is Role.MAILBOX and svc.name == service and (svc.tls == "implicit") == tls:
            return svc.port
    raise ValueError(f"no {'implicit-TLS' if tls else 'plain'} Mailbox service named {service!r}")


@dataclass(frozen=True, slots=True)
class Endpoint:
    server: str
    host: str
    port: int
    implicit_tls: bool = False  # SMTP: TLS from the first byte (RFC 8314) rather than STARTTLS
    tls_name: str | None = None  # the name the server's certificate carries (its FQDN)
    source: str | None = None  # our own address to connect from; None: the kernel's choice


class BackendLocator:
    def __init__(
        self, snapshot: Callable[[], DirectorySnapshot], local_server: str, local_listen: Sequence[str]
    ) -> None:
        self._snapshot = snapshot
        self._local = local_server.casefold()
        self._listen = tuple(local_listen)
        self._local_host = self._reachable(local_listen)

    @staticmethod
    def _reachable(listen: Sequence[str]) -> str:
        """An address of ours that a connection from this machine reaches."""
        for address in listen:
            if address not in WILDCARDS:
                return address
        return WILDCARDS.get(listen[0], "127.0.0.1") if listen else "127.0.0.1"

    def _host(self, server: Server) -> str:
        if server.name.casefold() == self._local:
            return self._local_host
        return server.addresses[0] if server.addresses else server.fqdn

    def mailbox_server(self, recipient: Recipient) -> Server | None:
        """The Mailbox server the recipient's database is mounted on, if any."""
        snapshot = self._snapshot()
        database = snapshot.database(recipient.database or "")
        if database is None or not database.mounted or database.server is None:
            return None
        server = snapshot.server(database.server)
        if server is None or Role.MAILBOX.value not in server.roles:
            return None
        return server

    def locate(self, recipient: Recipient, service: str) -> Endpoint | None:
        """The back end holding the recipient's mailbox, or None when its database is not
        mounted on any Mailbox server the directory knows."""
        server = self.mailbox_server(recipient)
        if server is None:
            return None
        host = self._host(server)
        return Endpoint(
            server.name,
            host,
            offset_port(backend_port(service), server.port_offset),
            source=source_address(self._listen, host),
        )

    # -- SMTP -----------------------------------------------------------------------------------

    def site_mailbox_servers(self) -> list[Server]:
        """The Mailbox servers of our own site (of every site if we are not registered)."""
        snapshot = self._snapshot()
        me = next((s for s in snapshot.servers() if s.name.casefold() == self._local), None)
        return [
            s for s in snapshot.servers() if Role.MAILBOX.value in s.roles and (me is None or s.site == me.site)
        ]

    def smtp_endpoint(self, server: Server, connector_template: str) -> Endpoint | None:
        """Where `server` runs the receive connector `connector_template` (core/ports.py), or None
        when it is disabled."""
        name = connector_template.format(server=server.name)
        connector = receive_connector(self._snapshot().receive_connectors(server.name), name)
        if connector is not None and not connector.enabled:
            return None
        roles = frozenset(Role(r) for r in server.roles)
        seed = next((s.port for s in services_for(roles) if s.connector == connector_template), None)
        targets = connector_targets(server, connector, seed)
        if not targets:
            return None
        host = self._host(server)
        return Endpoint(
            server.name,
            host,
            targets[0].port,
            implicit_tls=connector is not None and connector.implicit_tls,
            tls_name=server.fqdn,
            source=source_address(self._listen, host),
        )

    def smtp_endpoints(self, recipients: Iterable[Recipient | None], connector_template: str) -> list[Endpoint]:
        """The connector on the Mailbox servers holding these recipients (most recipients first),
        then on the other Mailbox servers of the site (in random order, to spread the load)."""
        counts: dict[str, int] = {}
        preferred: dict[str, Server] = {}
        for recipient in recipients:
            server = self.mailbox_server(recipient) if recipient is not None else None
            if server is not None:
                key = server.name.casefold()
                counts[key] = counts.get(key, 0) + 1
                preferred[key] = server
        ordered = sorted(preferred.values(), key=lambda s: -counts[s.name.casefold()])
        others = [s for s in self.site_mailbox_servers() if s.name.casefold() not in preferred]
        random.shuffle(others)
        out = []
        for server in ordered + others:
            endpoint = self.smtp_endpoint(server, connector_template)
            if endpoint is not None:
                out.append(endpoint)
        return out
