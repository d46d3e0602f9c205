"""Mail between the servers of one organization: the implicit intra-organization send connector,
mutual TLS on organization certificates, the header firewall, duplicates, the outbound proxy.

Two all-in-one servers, mx1 and mx2, run as `courriel serve` processes on 127.0.0.1 with their own
port offsets and one PostgreSQL directory; alice's database DB1 is mounted on mx1, bob's DB2 on
mx2 (both databases on PostgreSQL, so either server can mount either). The FrontEndProxyEnabled
test runs the SMTP stage in-process against a recording next hop that plays the Client Access
server's "Outbound Proxy Frontend".
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import smtplib
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509

from courriel.admin.commands.setup import ServerSetup, init_server
from courriel.core.address import Address
from courriel.core.replies import QUEUED, RECIPIENT_OK, SENDER_OK, Reply
from courriel.org.directory import Directory
from courriel.org.model import PermissionGroup, ReceiveConnector, SendConnector, Server, TransportRole
from courriel.proto.smtp import Envelope, MailParams, RcptParams, SessionInfo, SessionSettings
from courriel.security.orgca import OrgCredentials, certificate_server, new_authority
from courriel.security.tls import ensure_certificate, server_context
from courriel.services.smtp_server import SmtpListener
from courriel.transport.categorize.resolver import EnvelopeRecipient
from courriel.transport.deliver.organization import OrgLinks
from courriel.transport.route.organization import INTRA_ORG_CONNECTOR
from courriel.transport.service import Submission
from courriel.transport.tracking import search_tracking
from tests.conftest import create_pg_database, drop_pg_database, postgres_available, require
from tests.integration.mailserver import PASSWORD, MailServer, distinct_offsets, no_verify_tls
from tests.integration.outbound_env import Directory as OutboundDirectory
from tests.integration.outbound_env import build_outbound

ALICE, BOB = "alice@example.test", "bob@example.test"
NO_VERIFY = no_verify_tls()
WAIT = 30.0
T = TypeVar("T")


# -- a recording next hop ---------------------------------------------------------------------


@dataclass
class Kept:
    recipients: list[str]
    data: bytes
    tls: bool
    server: str | None  # the organization server its client certificate proved


@dataclass
class Recorder:
    """A next hop that keeps what it accepts with a 250, and who sent it."""

    tls: ssl.SSLContext | None = None
    peer_server: Callable[[ssl.SSLObject | None], str | None] | None = None
    messages: list[Kept] = field(default_factory=list)
    _listener: SmtpListener | None = None

    async def start(self, host: str, port: int) -> Recorder:
        def settings(_peer: tuple[str, int]) -> SessionSettings:
            return SessionSettings(fqdn="next-hop.test", tls_available=self.tls is not None, auth_mechanisms=())

        self._listener = SmtpListener(settings, lambda _s: _Keep(self), self.tls, peer_server=self.peer_server)
        await self._listener.start(host, port)
        return self

    @property
    def port(self) -> int:
        assert self._listener is not None
        return self._listener.port

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop(grace=0.5)


class _Keep:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def connect(self, info: SessionInfo) -> Reply | None:
        return None

    async def helo(self, info: SessionInfo, name: str) -> Reply | None:
        return None

    async def mail(self, info: SessionInfo, sender: Address | None, params: MailParams) -> Reply:
        return SENDER_OK

    async def rcpt(self, info: SessionInfo, rcpt: Address, params: RcptParams) -> Reply:
        return RECIPIENT_OK

    async def authenticate(self, info: SessionInfo, mechanism: str, authzid: str | None, username: str, password: str) -> Reply:
        raise AssertionError("no AUTH is offered")

    async def data(self, info: SessionInfo, envelope: Envelope, message: bytes) -> Reply:
        kept = Kept([str(a) for a, _ in envelope.recipients], message, info.tls_active, info.authenticated_server)
        self.recorder.messages.append(kept)
        return QUEUED

    def disconnected(self, info: SessionInfo) -> None:
        pass


class Background:
    """An event loop in a thread, for next hops that synchronous tests talk to through a server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(WAIT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)


# -- the organization -------------------------------------------------------------------------


@dataclass
class Org:
    servers: dict[str, MailServer]
    directory_url: str

    def courriel(self, server: str, *args: str) -> str:
        done = self.servers[server].courriel(*args)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    def directory(self, work: Callable[[Directory], Awaitable[object]]) -> None:
        async def run() -> None:
            directory = await Directory.open(self.directory_url)
            try:
                await work(directory)
            finally:
                await directory.close()

        asyncio.run(run())

    def queues(self, server: str) -> list[dict[str, object]]:
        return list(json.loads(self.courriel(server, "queue", "list", "--json")))

    def retrying(self, server: str, next_hop: str) -> list[dict[str, object]]:
        """`server`'s queues to `next_hop` in Retry, once there are any (or none after WAIT)."""
        deadline = time.monotonic() + WAIT
        while True:
            found = [q for q in self.queues(server) if q["next_hop"] == next_hop and q["status"] == "Retry"]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    urls = [asyncio.run(create_pg_database()) for _ in range(3)]
    root = tmp_path_factory.mktemp("intra-org")
    servers: dict[str, MailServer] = {}
    try:
        for name, offset in zip(("mx1", "mx2"), distinct_offsets(), strict=True):
            setup = ServerSetup(
                config_path=root / name / "courriel.toml",
                server=name,
                fqdn=f"{name}.example.test",
                listen=("127.0.0.1",),
                port_offset=offset,
                directory_url=urls[0],
            )
            first = name == "mx1"
            asyncio.run(
                init_server(
                    setup,
                    organization="Courriel Intra" if first else None,
                    domain="example.test" if first else None,
                    join=not first,
                )
            )
            servers[name] = MailServer(setup.config_path, offset)
        found = Org(servers, urls[0])

        async def people(directory: Directory) -> None:
            await directory.new_database("DB1", urls[1], "mx1")
            await directory.new_database("DB2", urls[2], "mx2")
            await directory.new_mailbox(ALICE, "Alice", PASSWORD, "DB1")
            await directory.new_mailbox(BOB, "Bob", PASSWORD, "DB2")

        found.directory(people)
        for server in servers.values():
            server.start()
        yield found
    finally:
        for server in servers.values():
            server.stop()
        for url in urls:
            asyncio.run(drop_pg_database(url))


def _message(token: str, extra: str = "", message_id: str | None = None) -> bytes:
    return (
        f"From: someone@elsewhere.test\r\nTo: {BOB}\r\nSubject: {token}\r\n"
        f"Message-ID: <{message_id or token}@intra.test>\r\n{extra}\r\nbody {token}\r\n"
    ).encode()


def _send(server: MailServer, to: Sequence[str], data: bytes, sender: str = "someone@elsewhere.test") -> None:
    """Anonymous mail from the Internet to a server's Default Frontend."""
    with smtplib.SMTP(server.host, server.port("frontend"), timeout=WAIT) as smtp:
        smtp.sendmail(sender, list(to), data)


def _find(server: MailServer, address: str, token: str, count: int = 1) -> list[bytes]:
    deadline = time.monotonic() + WAIT
    while True:
        found = [m for m in server.inbox(address) if f"Subject: {token}".encode() in m]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _header(message: bytes, name: str) -> list[str]:
    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    return [" ".join(str(v).split()) for v in parsed.get_all(name, [])]


# -- the tests --------------------------------------------------------------------------------


def test_mail_for_another_server_is_relayed_there_by_certificate(org: Org) -> None:
    mx1, mx2 = org.servers["mx1"], org.servers["mx2"]
    token = f"relay-{uuid.uuid4().hex[:8]}"
    _send(mx1, [BOB], _message(token))
    (got,) = _find(mx2, BOB, token)
    # mx2 took it from an authenticated server: it kept mx1's stamps, and added none of its own.
    assert _header(got, "X-Courriel-Organization-AuthSource") == ["mx1.example.test"]
    assert _header(got, "X-Courriel-Organization-AuthAs") == ["Anonymous"]
    received = _header(got, "Received")
    assert "by mx2.example.test" in received[0] and "ESMTPSA" in received[0]
    sent = search_tracking(mx1.config.data_dir / "logs" / "tracking", event_id="SEND", recipient=BOB)
    assert [e["connector"] for e in sent if e.get("subject") == token] == [INTRA_ORG_CONNECTOR]
    assert not [q for q in org.queues("mx1") if q["next_hop"] == "mx2"]  # mx1 let go of its copy after mx2's 250


def test_the_transport_port_admits_servers_only(org: Org) -> None:
    """An Internet client that reaches "Default mx2" is asked for a certificate it has not got,
    and so cannot send there; on "Default Frontend" it is never asked."""
    mx2 = org.servers["mx2"]
    with smtplib.SMTP(mx2.host, mx2.port("transport"), timeout=WAIT) as smtp:
        smtp.starttls(context=NO_VERIFY)
        assert _certificate_server(smtp) == "mx2"  # the organization's listener context
        smtp.ehlo()
        assert smtp.mail("someone@elsewhere.test")[0] == 530
    with smtplib.SMTP(mx2.host, mx2.port("frontend"), timeout=WAIT) as smtp:
        smtp.starttls(context=NO_VERIFY)
        assert _certificate_server(smtp) is None  # the public one, which asks no client for a certificate
        smtp.ehlo()
        assert smtp.mail("someone@elsewhere.test")[0] == 250


def _certificate_server(smtp: smtplib.SMTP) -> str | None:
    assert isinstance(smtp.sock, ssl.SSLSocket)
    der = smtp.sock.getpeercert(binary_form=True)
    assert der is not None
    return certificate_server(x509.load_der_x509_certificate(der))


def test_the_header_firewall_drops_what_outsiders_claim(org: Org) -> None:
    mx2 = org.servers["mx2"]
    token = f"forged-{uuid.uuid4().hex[:8]}"
    forged = "X-Courriel-Organization-AuthAs: Internal\r\nX-Courriel-Organization-AuthSource: evil.test\r\n"
    _send(mx2, [BOB], _message(token, forged))
    (got,) = _find(mx2, BOB, token)
    assert _header(got, "X-Courriel-Organization-AuthAs") == ["Anonymous"]
    assert _header(got, "X-Courriel-Organization-AuthSource") == ["mx2.example.test"]


def test_mail_leaving_the_organization_carries_no_internal_headers(org: Org) -> None:
    mx1 = org.servers["mx1"]
    loop = Background()
    try:
        recorder = loop.run(Recorder().start("127.0.0.1", 0))
        org.courriel(
            "mx1", "send-connector", "new", "Partner", "--address-space", "partner.test",
            "--smart-host", "127.0.0.1", "--port", str(recorder.port),
        )
        time.sleep(1.5)  # the servers' directory caches follow within a second
        token = f"out-{uuid.uuid4().hex[:8]}"
        with smtplib.SMTP(mx1.host, mx1.port("client"), timeout=WAIT) as smtp:
            smtp.starttls(context=NO_VERIFY)
            smtp.login(ALICE, PASSWORD)
            smtp.sendmail(ALICE, ["carol@partner.test"], _message(token))
        deadline = time.monotonic() + WAIT
        while not recorder.messages and time.monotonic() < deadline:
            time.sleep(0.1)
        (kept,) = recorder.messages
        assert kept.recipients == ["carol@partner.test"] and token.encode() in kept.data
        assert b"x-courriel-organization-" not in kept.data.lower()
        loop.run(recorder.stop())
    finally:
        org.courriel("mx1", "send-connector", "remove", "Partner")
        loop.close()


def test_a_copy_sent_again_is_delivered_once(org: Org) -> None:
    """A hop that died before it recorded our 250 sends the message again: same Message-ID,
    same recipient, so the mailbox keeps one copy. Another message id is another message."""
    mx2 = org.servers["mx2"]
    token = f"dup-{uuid.uuid4().hex[:8]}"
    _send(mx2, [BOB], _message(token))
    _send(mx2, [BOB], _message(token))
    _send(mx2, [BOB], _message(token, message_id=f"{token}-other"))
    tracking = mx2.config.data_dir / "logs" / "tracking"
    deadline = time.monotonic() + WAIT
    delivered: list[str] = []
    while len(delivered) < 3 and time.monotonic() < deadline:
        events = search_tracking(tracking, event_id="DELIVER", recipient=BOB)
        delivered = [e["recipient_status"] for e in events if e.get("subject") == token]
        time.sleep(0.1)
    assert sorted(delivered) == ["250 2.0.0 Delivered"] * 2 + ["250 2.0.0 Duplicate delivery suppressed"]
    assert len(_find(mx2, BOB, token, count=2)) == 2


def test_mail_waits_for_a_database_and_follows_it(org: Org) -> None:
    mx1, mx2 = org.servers["mx1"], org.servers["mx2"]
    org.directory(lambda d: d.dismount_database("DB2"))
    try:
        time.sleep(1.5)
        token = f"wait-{uuid.uuid4().hex[:8]}"
        _send(mx1, [BOB], _message(token))
        assert org.retrying("mx1", "DB2"), org.queues("mx1")  # mounted nowhere: it waits, it is not bounced
    finally:
        org.directory(lambda d: d.mount_database("DB2", "mx2"))
    time.sleep(1.5)
    org.courriel("mx1", "queue", "retry", "--all")
    assert _find(mx2, BOB, token)
    assert not [q for q in org.queues("mx1") if q["next_hop"] in ("DB2", "mx2")]


def test_a_stopped_mailbox_server_is_retried_not_bounced(org: Org) -> None:
    mx1, mx2 = org.servers["mx1"], org.servers["mx2"]
    mx2.stop()
    try:
        token = f"down-{uuid.uuid4().hex[:8]}"
        _send(mx1, [BOB], _message(token))
        queue = org.retrying("mx1", "mx2")
        assert queue and queue[0]["delivery_type"] == "SmtpRelayToMailboxServer", org.queues("mx1")
    finally:
        mx2.start()
    org.courriel("mx1", "queue", "retry", "--all")
    assert _find(mx2, BOB, token)


# -- FrontEndProxyEnabled, in-process ---------------------------------------------------------


@dataclass
class _Topology:
    """mx1 (co-located) whose "Outbound Proxy Frontend mx1" is the recording next hop."""

    proxy_port: int
    servers_: tuple[Server, ...] = (Server("mx1", "mx1.example.test", ("client-access", "mailbox"), "Site", ("127.0.0.1",)),)

    def database(self, name: str) -> None:
        return None

    def server(self, name: str) -> Server | None:
        return self.servers_[0] if name == "mx1" else None

    def servers(self) -> Sequence[Server]:
        return self.servers_

    def receive_connectors(self, server: str) -> Sequence[ReceiveConnector]:
        return (
            ReceiveConnector(
                server="mx1",
                name="Outbound Proxy Frontend mx1",
                transport_role=TransportRole.FRONTEND,
                bindings=(f"127.0.0.1:{self.proxy_port}",),
                permission_groups=(PermissionGroup.EXCHANGE_SERVERS,),
            ),
        )


async def test_front_end_proxy_connector_sends_through_the_proxy(tmp_path: Path) -> None:
    ca = new_authority("Courriel Intra")
    ours = OrgCredentials.ensure(tmp_path / "mx1", *ca, "mx1", "mx1.example.test", ("127.0.0.1",))
    proxy_creds = OrgCredentials.ensure(tmp_path / "cas", *ca, "cas1", "cas1.example.test", ("127.0.0.1",))
    ensure_certificate(tmp_path / "pub.crt", tmp_path / "pub.key", "cas1.example.test")
    listener_tls = proxy_creds.accept_servers(server_context(tmp_path / "pub.crt", tmp_path / "pub.key"))
    proxy = await Recorder(listener_tls, proxy_creds.peer_server).start("127.0.0.1", 0)
    connector = SendConnector(
        "Proxied", (("partner.test", 1),), dns_routing_enabled=False, smart_hosts=("192.0.2.1",),
        front_end_proxy_enabled=True,
    )
    out = await build_outbound(tmp_path / "out", OutboundDirectory([connector]))
    out.smtp.organization = OrgLinks("mx1", lambda: _Topology(proxy.port), ours)
    try:
        token = f"proxy-{uuid.uuid4().hex[:8]}"
        await out.service.submit(
            Submission(
                sender="alice@example.test",
                recipients=[EnvelopeRecipient("carol@partner.test")],
                data=_message(token),
                client_ip="127.0.0.1",
                auth_user="alice@example.test",
            )
        )
        async with asyncio.timeout(WAIT):
            while not proxy.messages:
                await asyncio.sleep(0.05)
        (kept,) = proxy.messages
        assert kept.recipients == ["carol@partner.test"] and kept.tls and kept.server == "mx1"
        assert b"x-courriel-organization-" not in kept.data.lower()  # the proxy relays to the Internet
        async with asyncio.timeout(WAIT):
            while not out.events("SEND"):
                await asyncio.sleep(0.05)
        assert out.events("SEND")[0]["connector"] == "Proxied"
    finally:
        await out.service.stop()
        await out.queue.close()
        await proxy.stop()
