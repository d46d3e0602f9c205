"""The header firewall and the routes inside the organization, without sockets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from courriel.org.defaults import default_receive_connectors
from courriel.org.model import MailboxDatabase, ReceiveConnector, Server
from courriel.transport.firewall import AUTH_AS, AUTH_SOURCE, admit, strip_internal
from courriel.transport.route.nexthop import MAILBOX_DELIVERY, SERVER_RELAY, mailbox_hop
from courriel.transport.route.organization import mailbox_server_targets, outbound_proxy_targets

FORGED = (
    b"Received: from a\r\n"
    b"X-Courriel-Organization-AuthAs: Internal\r\n"
    b"x-courriel-organization-authsource: evil.example\r\n"
    b"  (folded onto a second line)\r\n"
    b"Subject: hi\r\n"
    b"\r\n"
    b"X-Courriel-Organization-AuthAs: Internal\r\n"  # in the body: not a header, left alone
)


def test_strip_removes_internal_fields_with_their_folded_lines_and_leaves_the_body() -> None:
    out = strip_internal(FORGED)
    assert out == b"Received: from a\r\nSubject: hi\r\n\r\nX-Courriel-Organization-AuthAs: Internal\r\n"
    plain = b"Subject: x\r\n\r\nbody\r\n"
    assert strip_internal(plain) is plain


def test_admit_replaces_what_an_outsider_claims() -> None:
    out = admit(FORGED, from_server=False, auth_as="Anonymous", source="mx1.example.test", network_message_id="q1")
    head = out.split(b"\r\n\r\n", 1)[0]
    assert f"{AUTH_AS}: Anonymous".encode() in head and b"Internal" not in head
    assert f"{AUTH_SOURCE}: mx1.example.test".encode() in head and b"evil" not in head


def test_admit_keeps_what_a_server_stamped_and_stamps_what_a_front_end_stripped() -> None:
    stamped = admit(b"Subject: x\r\n\r\nbody", from_server=False, auth_as="Internal", source="mx1", network_message_id="q1")
    assert admit(stamped, from_server=True, auth_as="Anonymous", source="mx2", network_message_id="q2") == stamped
    bare = admit(b"Subject: x\r\n\r\nbody", from_server=True, auth_as="Anonymous", source="mx2", network_message_id="q2")
    assert f"{AUTH_SOURCE}: mx2".encode() in bare


@dataclass
class Topology:
    servers_: list[Server]
    databases: dict[str, MailboxDatabase] = field(default_factory=dict)
    connectors: dict[str, list[ReceiveConnector]] = field(default_factory=dict)

    def database(self, name: str) -> MailboxDatabase | None:
        return self.databases.get(name)

    def server(self, name: str) -> Server | None:
        return next((s for s in self.servers_ if s.name.lower() == name.lower()), None)

    def servers(self) -> Sequence[Server]:
        return self.servers_

    def receive_connectors(self, server: str) -> Sequence[ReceiveConnector]:
        return self.connectors.get(server, [])


def _topology() -> Topology:
    both, mailbox, cas = ("client-access", "mailbox"), ("mailbox",), ("client-access",)
    servers = [
        Server("mx1", "mx1.example.test", both, "Site", ("127.0.0.1",), 10000),
        Server("mbx2", "mbx2.example.test", mailbox, "Site", (), 0),
        Server("cas3", "cas3.example.test", cas, "Site", ("10.0.0.3",), 0),
        Server("cas9", "cas9.example.test", cas, "Elsewhere", ("10.0.0.9",), 0),
    ]
    connectors = {
        "mx1": default_receive_connectors("mx1", both, ("127.0.0.1",)),
        "cas3": default_receive_connectors("cas3", cas),
    }
    databases = {
        "DB1": MailboxDatabase("DB1", "sqlite:///db1", "mx1"),
        "DB2": MailboxDatabase("DB2", "sqlite:///db2", "mbx2"),
        "DB3": MailboxDatabase("DB3", "sqlite:///db3", None, mounted=False),
    }
    return Topology(servers, databases, connectors)


def test_a_database_mounted_elsewhere_is_a_server_hop() -> None:
    topology = _topology()
    assert mailbox_hop("DB1", topology, "MX1").key == "mailbox:DB1"
    hop = mailbox_hop("DB2", topology, "mx1")
    assert (hop.key, hop.delivery_type) == ("server:mbx2", SERVER_RELAY)
    # Mounted nowhere: it waits here for its database.
    assert (mailbox_hop("DB3", topology, "mx1").delivery_type) == MAILBOX_DELIVERY
    assert mailbox_hop("DB2").key == "mailbox:DB2"  # a single server: everything is local


def test_where_servers_listen() -> None:
    topology = _topology()
    # From its "Default mx1" binding (127.0.0.1:2525, co-located) plus its port offset.
    assert [(t.host, t.port) for t in mailbox_server_targets(topology, "mx1")] == [("127.0.0.1", 12525)]
    # No connectors known: the seed's port (25, stand-alone) at its FQDN.
    assert [(t.host, t.port) for t in mailbox_server_targets(topology, "mbx2")] == [("mbx2.example.test", 25)]
    assert mailbox_server_targets(topology, "cas3") == []  # not a Mailbox server
    # The outbound proxy: this server first, then the site's other Client Access servers only.
    proxies = outbound_proxy_targets(topology, "mx1")
    assert [(t.server, t.host, t.port) for t in proxies] == [("mx1", "127.0.0.1", 10717), ("cas3", "10.0.0.3", 717)]
    assert [t.server for t in outbound_proxy_targets(topology, "mbx2")] == ["cas3", "mx1"]  # by name
