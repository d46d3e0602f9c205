"""Next-hop selection for one recipient (DESIGN.md §4 "route").

Local mailboxes go to their mailbox database: delivered here when it is mounted here (or mounted
nowhere: the recipient waits for it), relayed to the Mailbox server where it is mounted otherwise
(route/organization.py). Everything else goes through a send connector: the
most specific address-space match wins, then the lowest cost (research §2). With no matching
connector — and none exists by default — the recipient waits in the Unreachable queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from courriel.core.address import domain_matches
from courriel.org.model import SendConnector
from courriel.transport.route.organization import Topology, mounted_elsewhere

MAILBOX_DELIVERY = "SmtpDeliveryToMailbox"
SERVER_RELAY = "SmtpRelayToMailboxServer"
DNS_CONNECTOR = "DnsConnectorDelivery"
SMART_HOST_CONNECTOR = "SmartHostConnectorDelivery"
UNREACHABLE = "Unreachable"


@dataclass(frozen=True, slots=True)
class NextHop:
    key: str  # the queue's identity: "mailbox:DB01", "server:MBX2", "smtp:Internet:example.com", "unreachable:example.com"
    delivery_type: str
    connector: str | None = None


def mailbox_hop(database: str, topology: Topology | None = None, server: str = "") -> NextHop:
    """A mailbox of `database`: delivered here, or relayed to the server where it is mounted."""
    elsewhere = mounted_elsewhere(database, topology, server) if topology is not None else None
    if elsewhere is not None:
        return NextHop(f"server:{elsewhere}", SERVER_RELAY)
    return NextHop(f"mailbox:{database}", MAILBOX_DELIVERY)


def _specificity(pattern: str) -> int:
    """Longer exact patterns beat wildcards; `*` is the least specific."""
    if pattern == "*":
        return 0
    if pattern.startswith("*."):
        return 2 * len(pattern)
    return 2 * len(pattern) + 1


def select_connector(domain: str, connectors: Iterable[SendConnector], server: str) -> SendConnector | None:
    best: tuple[int, int, str] | None = None
    chosen = None
    for conn in connectors:
        if not conn.enabled:
            continue
        if conn.source_transport_servers and server not in conn.source_transport_servers:
            continue
        for pattern, cost in conn.address_spaces:
            if domain_matches(domain, pattern):
                rank = (-_specificity(pattern), cost, conn.name)
                if best is None or rank < best:
                    best, chosen = rank, conn
    return chosen


def external_hop(domain: str, connectors: Iterable[SendConnector], server: str) -> NextHop:
    conn = select_connector(domain, connectors, server)
    if conn is None:
        return NextHop(f"unreachable:{domain}", UNREACHABLE)
    kind = DNS_CONNECTOR if conn.dns_routing_enabled else SMART_HOST_CONNECTOR
    return NextHop(f"smtp:{conn.name}:{domain}", kind, conn.name)
