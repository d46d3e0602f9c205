"""Front End Transport against scripted back ends on loopback (clientaccess/smtp_proxy.py).

Each "Mailbox server" is a real SMTP listener (tests/integration/outbound_env.py's `Peer`) whose
replies the test sets; the front end reaches it over STARTTLS through the locator, as in
production. What is checked: the client's answer is the back end's (250 only after its 250, its
5xx passed on, 4xx when none answers), the fallback to another Mailbox server of the site, the
non-delivery report for recipients a back end refused while it took the others, AUTH as the user
on "Client Proxy", and the Outbound Proxy Frontend relay through a send connector.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from courriel.clientaccess.locator import BackendLocator
from courriel.clientaccess.smtp_outbound import OutboundProxy
from courriel.clientaccess.smtp_proxy import BackEndDeferred, BackEndRefused, FrontEndTransport
from courriel.core.replies import Reply
from courriel.dns import NextHopResolver
from courriel.org.model import (
    MailboxDatabase,
    ReceiveConnector,
    Recipient,
    RecipientKind,
    SendConnector,
    Server,
    TransportRole,
)
from courriel.security.tls import client_context
from courriel.transport.categorize.resolver import EnvelopeRecipient
from courriel.transport.firewall import AUTH_AS
from courriel.transport.service import Submission
from tests.integration.mailserver import free_offset
from tests.integration.outbound_env import Peer, peer_tls

MESSAGE = b"From: someone@remote.test\r\nTo: alice@example.test\r\nSubject: hi\r\nMessage-ID: <m1@remote.test>\r\n\r\nHello\r\n"


def free_port() -> int:
    """A free port below the ephemeral range (the harness's `free_offset` rule)."""
    return free_offset("127.0.0.1", (25,)) + 25


@dataclass
class Topology:
    """The directory as the front end reads it: servers, their connectors, databases, recipients."""

    servers: dict[str, Server] = field(default_factory=dict)
    connectors: dict[str, list[ReceiveConnector]] = field(default_factory=dict)
    dbs: dict[str, MailboxDatabase] = field(default_factory=dict)
    people: dict[str, Recipient] = field(default_factory=dict)
    send: list[SendConnector] = field(default_factory=list)

    def add_mailbox_server(self, name: str, port: int) -> None:
        self.servers[name] = Server(name, f"{name.lower()}.example.test", ("mailbox",), "Site", ("127.0.0.1",))
        self.connectors[name] = [
            ReceiveConnector(server=name, name=f"Default {name}", transport_role=TransportRole.HUB, bindings=(f"0.0.0.0:{port}",)),
            ReceiveConnector(server=name, name=f"Client Proxy {name}", transport_role=TransportRole.HUB, bindings=(f"0.0.0.0:{port}",)),
        ]
        self.dbs[f"DB-{name}"] = MailboxDatabase(f"DB-{name}", "sqlite:///x.db", name)

    def add_user(self, address: str, server: str) -> None:
        self.people[address] = Recipient(
            id=len(self.people) + 1, kind=RecipientKind.MAILBOX, display_name=address, primary_address=address,
            addresses=(address,), database=f"DB-{server}",
        )

    def server(self, name: str) -> Server | None:
        return self.servers.get(name)

    def database(self, name: str) -> MailboxDatabase | None:
        return self.dbs.get(name)

    def recipient(self, address: str) -> Recipient | None:
        return self.people.get(address.lower())

    def receive_connectors(self, server: str) -> tuple[ReceiveConnector, ...]:
        return tuple(self.connectors.get(server, ()))

    def send_connectors(self) -> tuple[SendConnector, ...]:
        return tuple(self.send)

    def all_servers(self) -> tuple[Server, ...]:
        return tuple(self.servers.values())


class View:
    """Adapts Topology to the snapshot methods (servers() clashes with the field name)."""

    def __init__(self, topo: Topology) -> None:
        self.t = topo

    def __getattr__(self, name: str) -> Any:
        return getattr(self.t, name)

    def servers(self) -> tuple[Server, ...]:
        return self.t.all_servers()


@dataclass
class Env:
    topo: Topology
    peers: dict[str, Peer]
    front: FrontEndTransport
    tls_dir: Path

    async def backend(self, name: str, **settings: Any) -> Peer:
        port = free_port()
        tls, _ = peer_tls(self.tls_dir, name.lower(), "127.0.0.1")
        peer = await Peer("127.0.0.1", port, name=f"{name.lower()}.example.test", tls=tls, **settings).start()
        self.topo.add_mailbox_server(name, port)
        self.peers[name] = peer
        return peer


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    topo = Topology()
    topo.servers["CAS1"] = Server("CAS1", "cas1.example.test", ("client-access",), "Site", ("127.0.0.1",))
    view = View(topo)
    front = FrontEndTransport(
        server="CAS1",
        fqdn="cas1.example.test",
        locator=BackendLocator(lambda: view, "CAS1", ("127.0.0.1",)),  # type: ignore[arg-type, return-value]
        directory=lambda: view,
        backend_tls=lambda: client_context(verify=False),
        outbound=OutboundProxy(directory=lambda: view, resolver=NextHopResolver(), fqdn="cas1.example.test"),
        timeout=10.0,
    )
    e = Env(topo, {}, front, tmp_path)
    yield e
    await front.stop()
    for peer in e.peers.values():
        await peer.stop()


def submission(*rcpts: str, sender: str = "someone@remote.test", connector: str = "Default Frontend CAS1", **extra: Any) -> Submission:
    return Submission(
        sender=sender,
        recipients=[EnvelopeRecipient(r) for r in rcpts],
        data=MESSAGE,
        client_ip="192.0.2.7",
        helo="mx.remote.test",
        connector=connector,
        tls_version="TLS",
        **extra,
    )


async def test_inbound_goes_to_the_server_holding_the_mailbox_and_answers_with_its_ids(env: Env) -> None:
    await env.backend("MBX1")
    holder = await env.backend("MBX2", data_replies=[Reply(250, "2.6.0", "<m1@remote.test> [InternalId=Q42] Queued mail for delivery")])
    env.topo.add_user("alice@example.test", "MBX2")
    handed = await env.front.submit(submission("alice@example.test"))
    assert (handed.queue_id, handed.message_id) == ("Q42", "<m1@remote.test>")
    assert [m.recipients for m in holder.messages] == [["alice@example.test"]]
    assert env.peers["MBX1"].messages == []
    got = holder.messages[0]
    assert got.tls and got.sender == "someone@remote.test"
    # Our own trace field and the header firewall's stamp come first; the client's bytes follow.
    assert got.data.startswith(b"X-Courriel-Organization-") or got.data.startswith(b"Received: from mx.remote.test")
    assert b"by cas1.example.test" in got.data and f"{AUTH_AS}: Anonymous".encode() in got.data
    assert got.data.endswith(MESSAGE)


async def test_another_site_mailbox_server_takes_it_when_the_holder_is_down(env: Env) -> None:
    holder = await env.backend("MBX1")
    other = await env.backend("MBX2")
    env.topo.add_user("alice@example.test", "MBX1")
    await holder.stop()
    await env.front.submit(submission("alice@example.test"))
    assert [m.recipients for m in other.messages] == [["alice@example.test"]]


async def test_no_backend_answering_is_a_4xx_never_a_5xx(env: Env) -> None:
    peer = await env.backend("MBX1")
    env.topo.add_user("alice@example.test", "MBX1")
    await peer.stop()
    with pytest.raises(BackEndDeferred) as caught:
        await env.front.submit(submission("alice@example.test"))
    assert caught.value.reply.code == 451 and caught.value.reply.enhanced == "4.4.0"


async def test_a_backend_refusing_the_greeting_counts_as_down(env: Env) -> None:
    await env.backend("MBX1", greeting=Reply(554, "5.3.2", "Not now"))
    env.topo.add_user("alice@example.test", "MBX1")
    with pytest.raises(BackEndDeferred):
        await env.front.submit(submission("alice@example.test"))


async def test_a_backend_5xx_is_passed_on(env: Env) -> None:
    await env.backend("MBX1", data_replies=[Reply(554, "5.6.0", "Content refused")])
    env.topo.add_user("alice@example.test", "MBX1")
    with pytest.raises(BackEndRefused) as caught:
        await env.front.submit(submission("alice@example.test"))
    assert (caught.value.reply.code, caught.value.reply.enhanced, caught.value.reply.text) == (554, "5.6.0", "Content refused")


async def test_a_backend_4xx_is_tried_elsewhere_then_passed_on(env: Env) -> None:
    first = await env.backend("MBX1", data_replies=[Reply(452, "4.3.1", "Insufficient system storage")])
    env.topo.add_user("alice@example.test", "MBX1")
    with pytest.raises(BackEndDeferred) as caught:
        await env.front.submit(submission("alice@example.test"))
    assert caught.value.reply.code == 452 and first.messages == []
    second = await env.backend("MBX2")
    await env.front.submit(submission("alice@example.test"))
    assert len(second.messages) + len(first.messages) == 1


async def test_recipients_refused_beside_accepted_ones_get_a_report(env: Env) -> None:
    peer = await env.backend("MBX1", rcpt_replies={"bob@example.test": Reply(552, "5.2.2", "Mailbox full")})
    env.topo.add_user("alice@example.test", "MBX1")
    env.topo.add_user("bob@example.test", "MBX1")
    handed = await env.front.submit(submission("alice@example.test", "bob@example.test"))
    assert handed.reply.code == 250
    original, report = peer.messages
    assert original.recipients == ["alice@example.test"]
    assert report.sender == "" and report.recipients == ["someone@remote.test"]
    status = report.report()
    assert status[1]["Final-Recipient"].replace(" ", "") == "rfc822;bob@example.test"
    assert status[1]["Status"] == "5.2.2"


async def test_every_recipient_refused_is_a_5xx(env: Env) -> None:
    await env.backend("MBX1", rcpt_replies={"alice@example.test": Reply(550, "5.1.10", "Recipient not found")})
    env.topo.add_user("alice@example.test", "MBX1")
    with pytest.raises(BackEndRefused) as caught:
        await env.front.submit(submission("alice@example.test"))
    assert caught.value.reply.enhanced == "5.1.10"


async def test_submission_authenticates_as_the_user_on_client_proxy(env: Env) -> None:
    peer = await env.backend("MBX1", credentials=("alice@example.test", "secret"))
    env.topo.add_user("alice@example.test", "MBX1")
    sub = submission("friend@elsewhere.test", sender="alice@example.test", connector="Client Frontend CAS1", auth_user="alice@example.test", auth_password="secret")
    await env.front.submit(sub)
    assert peer.messages[0].auth == "alice@example.test"
    assert f"{AUTH_AS}: Internal".encode() in peer.messages[0].data


async def test_submission_without_the_users_credentials_is_deferred(env: Env) -> None:
    peer = await env.backend("MBX1", credentials=("alice@example.test", "secret"))
    env.topo.add_user("alice@example.test", "MBX1")
    sub = submission("friend@elsewhere.test", sender="alice@example.test", connector="Client Frontend CAS1", auth_user="alice@example.test")
    with pytest.raises(BackEndDeferred):
        await env.front.submit(sub)
    assert peer.messages == []


async def test_outbound_proxy_relays_through_the_send_connector(env: Env) -> None:
    hop = await Peer("127.0.0.1", free_port(), name="smarthost.test").start()
    env.peers["hop"] = hop
    env.topo.send.append(
        SendConnector(name="Via CAS", address_spaces=(("*", 1),), dns_routing_enabled=False, smart_hosts=("127.0.0.1",),
                      port=hop.port, front_end_proxy_enabled=True)
    )
    data = b"X-Courriel-Organization-AuthAs: Internal\r\n" + MESSAGE
    sub = submission("friend@elsewhere.test", sender="alice@example.test", connector="Outbound Proxy Frontend CAS1")
    sub.data = data
    await env.front.submit(sub)
    (got,) = hop.messages
    assert got.recipients == ["friend@elsewhere.test"]
    assert b"X-Courriel-Organization-" not in got.data  # mail leaving the organization is stripped


async def test_outbound_proxy_passes_the_next_hops_refusal_on(env: Env) -> None:
    hop = await Peer("127.0.0.1", free_port(), rcpt_replies={"nobody@elsewhere.test": Reply(550, "5.1.1", "No such user")}).start()
    env.peers["hop"] = hop
    env.topo.send.append(
        SendConnector(name="Via CAS", address_spaces=(("elsewhere.test", 1),), dns_routing_enabled=False,
                      smart_hosts=("127.0.0.1",), port=hop.port, front_end_proxy_enabled=True)
    )
    with pytest.raises(BackEndRefused) as caught:
        await env.front.submit(submission("nobody@elsewhere.test", sender="alice@example.test", connector="Outbound Proxy Frontend CAS1"))
    assert caught.value.reply.enhanced == "5.1.1"


async def test_outbound_proxy_without_a_proxied_connector_defers(env: Env) -> None:
    env.topo.send.append(SendConnector(name="Direct", address_spaces=(("*", 1),)))  # not FrontEndProxyEnabled
    with pytest.raises(BackEndDeferred):
        await env.front.submit(submission("friend@elsewhere.test", sender="alice@example.test", connector="Outbound Proxy Frontend CAS1"))
