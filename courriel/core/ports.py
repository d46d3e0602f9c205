"""The seed's ports table: which role listens where, for what, under which connector name.

Everything that prints or binds a port reads it from here (with the server's `port_offset`), so the
tables in `courriel ports` and the sockets the server opens cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    CLIENT_ACCESS = "client-access"
    MAILBOX = "mailbox"
    EDGE = "edge"


@dataclass(frozen=True, slots=True)
class Service:
    """One listening service of a role."""

    role: Role
    name: str  # "frontend-transport", "transport", "imap-proxy" …
    port: int
    purpose: str
    connector: str | None = None  # receive connector name template, "{server}" filled in
    tls: str = "starttls"  # "starttls", "implicit" or "none"


# Default receive connectors and their ports (research/exchange2013-facts.md §1).
DEFAULT_FRONTEND = "Default Frontend {server}"
CLIENT_FRONTEND = "Client Frontend {server}"
OUTBOUND_PROXY_FRONTEND = "Outbound Proxy Frontend {server}"
DEFAULT_TRANSPORT = "Default {server}"
CLIENT_PROXY = "Client Proxy {server}"
EDGE_DEFAULT = "Default internal Receive connector {server}"

SERVICES: tuple[Service, ...] = (
    Service(Role.CLIENT_ACCESS, "frontend-transport", 25, "Inbound mail from the Internet (anonymous)", DEFAULT_FRONTEND),
    Service(Role.CLIENT_ACCESS, "frontend-transport", 587, "Authenticated SMTP client submission", CLIENT_FRONTEND),
    Service(Role.CLIENT_ACCESS, "frontend-transport", 717, "Outbound mail proxied for Mailbox servers (FrontEndProxyEnabled)", OUTBOUND_PROXY_FRONTEND),
    Service(Role.CLIENT_ACCESS, "imap-proxy", 143, "IMAP4 clients (STARTTLS)"),
    Service(Role.CLIENT_ACCESS, "imap-proxy", 993, "IMAP4 clients (TLS)", tls="implicit"),
    Service(Role.CLIENT_ACCESS, "pop3-proxy", 110, "POP3 clients (STLS)"),
    Service(Role.CLIENT_ACCESS, "pop3-proxy", 995, "POP3 clients (TLS)", tls="implicit"),
    Service(Role.CLIENT_ACCESS, "http-proxy", 443, "Autodiscover, OWA, EWS, ActiveSync, OAB, MAPI, RPC (TLS)", tls="implicit"),
    Service(Role.CLIENT_ACCESS, "http-proxy", 80, "Calendar publishing, OWA redirect, Autodiscover fallback", tls="none"),
    Service(Role.MAILBOX, "transport", 25, "Mail from front ends, other Mailbox servers and the Edge", DEFAULT_TRANSPORT),
    Service(Role.MAILBOX, "transport", 465, "Authenticated submissions proxied by Client Frontend", CLIENT_PROXY),
    Service(Role.MAILBOX, "imap-backend", 1143, "IMAP4 back end (STARTTLS)"),
    Service(Role.MAILBOX, "imap-backend", 1993, "IMAP4 back end (TLS)", tls="implicit"),
    Service(Role.MAILBOX, "pop3-backend", 1110, "POP3 back end (STLS)"),
    Service(Role.MAILBOX, "pop3-backend", 1995, "POP3 back end (TLS)", tls="implicit"),
    Service(Role.MAILBOX, "http-backend", 444, "Web applications back end (TLS)", tls="implicit"),
    Service(Role.MAILBOX, "http-backend", 81, "Web applications back end", tls="none"),
    Service(Role.EDGE, "edge-transport", 25, "Mail from the Internet and from the organization", EDGE_DEFAULT),
    Service(Role.EDGE, "edgesync-directory", 50636, "EdgeSync pushes from subscribed Mailbox servers (LDAPS)", tls="implicit"),
)

# Where Client Access and Mailbox share a computer, the Transport service's "Default" connector
# moves from 25 to 2525 so that Front End Transport keeps 25 (exchange2013-facts.md §1).
COLOCATED_TRANSPORT_PORT = 2525


def transport_port(roles: frozenset[Role]) -> int:
    """The port of "Default <server>" for a server with these roles."""
    return COLOCATED_TRANSPORT_PORT if Role.CLIENT_ACCESS in roles else 25


def services_for(roles: frozenset[Role]) -> list[Service]:
    """The services a server with these roles runs, with the co-location rule applied."""
    out = []
    for svc in SERVICES:
        if svc.role not in roles:
            continue
        if svc.connector == DEFAULT_TRANSPORT:
            svc = Service(svc.role, svc.name, transport_port(roles), svc.purpose, svc.connector, svc.tls)
        out.append(svc)
    return out


def offset_port(port: int, offset: int) -> int:
    """A port with the server's `port_offset` applied (10000 → 10025, 12525 …)."""
    return port + offset


# The seed's flows with an Edge server name two send connectors per subscribed site
# (exchange2013-facts.md §4); they and next-hop DNS complete the organization's flow table.
EDGESYNC_INBOUND = "EdgeSync - Inbound to {site}"
EDGESYNC_TO_INTERNET = "EdgeSync - {site} to Internet"
SMTP_PORT = 25
DNS_PORT = 53
