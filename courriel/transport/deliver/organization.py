"""How the SMTP stage reaches other servers of the organization: where, and with which certificate.

Two kinds of hop leave for a server of our own organization (route/organization.py): the implicit
intra-organization send connector to another Mailbox server's Transport service, and a send
connector with FrontEndProxyEnabled through a Client Access server's "Outbound Proxy Frontend".
Both require STARTTLS with our organization certificate and a peer certificate of the
organization CA (the ExchangeServer mechanism): a peer that cannot prove it is one of ours never
gets the message, and nothing goes in clear. Such hops send no AUTH; the certificate is the
authentication. They leave from this server's own address (deliver/source.py), the one the
other servers and the organization's firewall rules know it by.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from courriel.core.errors import TransientError
from courriel.dns import DnsTemporaryFailure, NextHopResolver, NoSuchDomain
from courriel.org.model import MB, SendConnector
from courriel.security.orgca import OrgCredentials
from courriel.transport.deliver.session import MAX_ENDPOINTS, Endpoint
from courriel.transport.deliver.source import source_address
from courriel.transport.route.organization import (
    INTRA_ORG_CONNECTOR,
    Target,
    Topology,
    mailbox_server_targets,
    outbound_proxy_targets,
)

# The implicit connector has no size limit of its own (the next server's receive connector has).
INTRA_ORG = SendConnector(
    name=INTRA_ORG_CONNECTOR,
    address_spaces=(),
    dns_routing_enabled=False,
    max_message_size=2048 * MB,
    require_tls=True,
    usage="Internal",
)


@dataclass
class OrgLinks:
    server: str  # this server's name
    topology: Callable[[], Topology]
    credentials: OrgCredentials
    listen: Sequence[str] = ()  # this server's listen addresses: where its connections leave from
    _context: ssl.SSLContext | None = field(default=None, init=False)

    @property
    def context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = self.credentials.client_context()
        return self._context

    @staticmethod
    def through_proxy(connector: SendConnector) -> SendConnector:
        """The connector's session rules toward the proxy: TLS with our certificate, no AUTH. Its
        SourceIPAddress is for the Internet hop; this one leaves from our own address."""
        return dataclasses.replace(
            connector, require_tls=True, ignore_starttls=False, smart_host_auth_mechanism="None", tls_auth_level=None
        )

    async def mailbox_server(self, name: str, resolver: NextHopResolver) -> list[Endpoint]:
        targets = mailbox_server_targets(self.topology(), name)
        if not targets:
            raise TransientError(f"451 4.4.0 Mailbox server {name} is not in the directory", name)
        return await _resolve(targets, resolver, f"Mailbox server {name}", self.listen)

    async def outbound_proxy(self, resolver: NextHopResolver) -> list[Endpoint]:
        targets = outbound_proxy_targets(self.topology(), self.server)
        if not targets:
            raise TransientError(
                "451 4.4.0 No Client Access server of this site can proxy outbound mail", self.server
            )
        return await _resolve(targets, resolver, "the outbound proxy", self.listen)


async def _resolve(
    targets: list[Target], resolver: NextHopResolver, what: str, listen: Sequence[str]
) -> list[Endpoint]:
    """Each target's addresses, each with the local address a connection to it leaves from."""
    found: list[Endpoint] = []
    problems = []
    for target in targets:
        try:
            found += [
                Endpoint(target.host, a, target.port, source_address(listen, a))
                for a in await resolver.addresses(target.host)
            ]
        except (NoSuchDomain, DnsTemporaryFailure) as exc:
            problems.append(exc.detail)  # our own server's name: our problem, so defer
    if not found:
        raise TransientError(f"451 4.4.0 The address of {what} could not be resolved", "; ".join(problems))
    return found[:MAX_ENDPOINTS]
