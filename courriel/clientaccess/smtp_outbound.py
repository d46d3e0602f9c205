"""The next hops of "Outbound Proxy Frontend" (717): Internet mail a Mailbox server sends through us.

A send connector with FrontEndProxyEnabled makes the Mailbox transport hand its mail to a Client
Access server of its site (research/exchange2013-facts.md §1, §4), which relays it to the
Internet next hop exactly as the Mailbox server would have: the same send connector (the one
whose address space matches the recipient domain best, among those the sending server may use),
its MX lookup or smart hosts, its TLS and authentication rules, its SourceIPAddress (which this
server must then hold: the connection leaves from here). All of that is the delivery
code's (`transport/deliver/session.py`); this module only picks the connector and wraps each
endpoint as a `Hop` for `smtp_relay`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

from courriel.clientaccess.smtp_relay import Hop, HopFailed, parse_reply
from courriel.core.errors import PermanentError, TransientError
from courriel.core.replies import Reply
from courriel.dns import NextHopResolver
from courriel.org.model import SendConnector, Server
from courriel.transport.deliver.client import ProtocolLogger, SmtpClient
from courriel.transport.deliver.session import Endpoint, SessionFailed, SessionOpener, TlsContexts, endpoints
from courriel.transport.route.nexthop import select_connector

NO_CONNECTOR = Reply(451, "4.4.0", "No send connector with FrontEndProxyEnabled routes mail to this domain")
TOO_BIG = Reply(552, "5.3.4", "Message size exceeds the limit for this destination")


class SendDirectory(Protocol):
    def send_connectors(self) -> Sequence[SendConnector]: ...
    def servers(self) -> Sequence[Server]: ...


class OutboundProxy:
    def __init__(
        self,
        *,
        directory: Callable[[], SendDirectory],
        resolver: NextHopResolver,
        fqdn: str,
        contexts: TlsContexts | None = None,
        protocol_log: Callable[[str], ProtocolLogger | None] = lambda _connector: None,
        mx_port: int = 25,
    ) -> None:
        """`mx_port` is where MX hosts listen (25; tests without root move it)."""
        self.directory = directory
        self.resolver = resolver
        self.fqdn = fqdn
        self.contexts = contexts or TlsContexts()
        self.protocol_log = protocol_log
        self.mx_port = mx_port

    def connector(self, domain: str, client_ip: str) -> SendConnector | None:
        """The send connector the sending Mailbox server would have used for `domain`."""
        view = self.directory()
        proxied = [c for c in view.send_connectors() if c.front_end_proxy_enabled]
        source = next((s for s in view.servers() if client_ip in s.addresses), None)
        if source is None:  # known only by name (FQDN, wildcard listener): any source may use it
            proxied = [dataclasses.replace(c, source_transport_servers=()) for c in proxied]
        return select_connector(domain, proxied, source.name if source is not None else "")

    async def hops(self, domain: str, client_ip: str, size: int) -> list[Hop] | tuple[bool, Reply]:
        """The endpoints for `domain` in order, or a decision for all its recipients:
        (permanent?, reply) — no connector, message too big, null MX, DNS trouble."""
        conn = self.connector(domain, client_ip)
        if conn is None:
            return False, NO_CONNECTOR
        if size > conn.max_message_size:
            return True, TOO_BIG
        try:
            found = await endpoints(conn, domain, self.resolver, self.mx_port)
        except PermanentError as exc:
            return True, parse_reply(exc.public)
        except TransientError as exc:
            return False, parse_reply(exc.public)
        opener = SessionOpener(conn, conn.fqdn or self.fqdn, self.contexts, lambda _e: self.protocol_log(conn.name))
        return [self._hop(opener, conn, endpoint) for endpoint in found]

    @staticmethod
    def _hop(opener: SessionOpener, conn: SendConnector, endpoint: Endpoint) -> Hop:
        async def open_session() -> SmtpClient:
            try:
                return await opener.open(endpoint)
            except SessionFailed as exc:
                raise HopFailed(parse_reply(exc.error)) from exc

        return Hop(label=str(endpoint), key=f"out:{conn.name}:{endpoint}", open=open_session)
