"""Where a mailbox's IMAP4/POP3 back end listens: recipient → database → server → address and port.

Exchange's Client Access server finds the Mailbox server that holds the active copy of the
user's database and proxies to its back-end service (research/exchange2013-facts.md §3,
ProxyTargetPort): here the directory says which server a database is mounted on, that server's
`addresses` say where other servers reach it (its FQDN when it listens on every address), and
the back-end port is the implicit-TLS one of the ports table (1993, 1995) plus that server's
`port_offset`. A back end on this very server is reached on one of our own listen addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from courriel.core.ports import SERVICES, Role, offset_port
from courriel.org.model import Recipient
from courriel.org.snapshot import DirectorySnapshot

WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def backend_port(service: str) -> int:
    """The implicit-TLS port of a Mailbox back-end service ("imap-backend", "pop3-backend")."""
    for svc in SERVICES:
        if svc.role is Role.MAILBOX and svc.name == service and svc.tls == "implicit":
            return svc.port
    raise ValueError(f"no implicit-TLS Mailbox service named {service!r}")


@dataclass(frozen=True, slots=True)
class Endpoint:
    server: str
    host: str
    port: int


class BackendLocator:
    def __init__(
        self, snapshot: Callable[[], DirectorySnapshot], local_server: str, local_listen: Sequence[str]
    ) -> None:
        self._snapshot = snapshot
        self._local = local_server.casefold()
        self._local_host = self._reachable(local_listen)

    @staticmethod
    def _reachable(listen: Sequence[str]) -> str:
        """An address of ours that a connection from this machine reaches."""
        for address in listen:
            if address not in WILDCARDS:
                return address
        return WILDCARDS.get(listen[0], "127.0.0.1") if listen else "127.0.0.1"

    def locate(self, recipient: Recipient, service: str) -> Endpoint | None:
        """The back end holding the recipient's mailbox, or None when its database is not
        mounted on any Mailbox server the directory knows."""
        snapshot = self._snapshot()
        database = snapshot.database(recipient.database or "")
        if database is None or not database.mounted or database.server is None:
            return None
        server = snapshot.server(database.server)
        if server is None or Role.MAILBOX.value not in server.roles:
            return None
        if server.name.casefold() == self._local:
            host = self._local_host
        elif server.addresses:
            host = server.addresses[0]
        else:
            host = server.fqdn
        return Endpoint(server.name, host, offset_port(backend_port(service), server.port_offset))
