"""What the outbound tests (and bench/smtp_outbound.py) run against, all on loopback.

Remote MTAs listen on 127.0.0.121-129 (port 25 as root, else MX_PORT 10025 through the SMTP
stage's `mx_port`); the resolver asks `tests/dnsserver.py` on 127.0.0.120 (fixture `dns`). The
sender's own domain, sender.test, has its MX on 127.0.0.128 (fixture `bounces`): DSNs travel
back there over SMTP and are read with the email package.

- `Peer`: a remote MTA to deliver to: our own `SmtpListener` with a tiny policy whose replies
  the test sets per recipient and per DATA, that can offer or withhold STARTTLS, AUTH, DSN and
  SMTPUTF8, hold DATA forever (a stalled peer), and keeps what it accepted with a 250.
- `Directory`: the directory view the categorizer and the stages read: send connectors, an
  accepted domain, and groups of contacts.
- `build_outbound`: the transport in-process (queue, blobs, tracking, SMTP stage, service).
- `python -m tests.integration.outbound_env`: the same transport as a process, for the crash
  test; it submits `--submit` messages through a smart host connector, then runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import email
import email.parser
import email.policy
import os
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import pytest

from courriel.core.address import Address
from courriel.core.replies import AUTH_FAILED, AUTH_SUCCEEDED, QUEUED, RECIPIENT_OK, SENDER_OK, Reply
from courriel.dns import NextHopResolver
from courriel.org.model import (
    AcceptedDomain,
    DomainType,
    LoggingLevel,
    MailboxDatabase,
    Recipient,
    RecipientKind,
    SendConnector,
    TransportConfig,
)
from courriel.proto.smtp import Envelope, MailParams, RcptParams, SessionInfo, SessionSettings
from courriel.security.tls import ensure_certificate, server_context
from courriel.services.smtp_server import SmtpListener
from courriel.storage.blobs import BlobStore
from courriel.transport.categorize.resolver import EnvelopeRecipient
from courriel.transport.deliver.connections import Connections
from courriel.transport.deliver.local import LocalDelivery
from courriel.transport.deliver.smtp import SmtpDelivery
from courriel.transport.protocol_log import ProtocolLog
from courriel.transport.queue.store import QueuedMessage, QueuedRecipient, QueueStore
from courriel.transport.service import Accepted, Submission, TransportService
from courriel.transport.tracking import TrackingLog, search_tracking
from tests.dnsserver import DnsServer, Records, start_dns_server

FQDN = "mbx01.corp.test"
ORG_DOMAIN = "corp.test"
ROOT = os.geteuid() == 0
MX_PORT = 25 if ROOT else 10025
DNS_HOST = "127.0.0.120"
SENDER = "alice@sender.test"
INTERNET = SendConnector(
    name="Internet",
    address_spaces=(("*", 1),),
    protocol_logging_level=LoggingLevel.VERBOSE,
    connection_inactivity_timeout=5.0,
)
TOO_MANY_SESSIONS = Reply(421, "4.3.2", "Too many connections from your host")
ZONE: Records = {
    "sender.test": {"MX": [(10, "mx.sender.test.")]},
    "mx.sender.test": {"A": ["127.0.0.128"]},
    "pref.test": {"MX": [(10, "mx-a.pref.test."), (20, "mx-b.pref.test.")]},
    "mx-a.pref.test": {"A": ["127.0.0.121"]},  # nothing listens there: refused
    "mx-b.pref.test": {"A": ["127.0.0.122"]},
    "implicit.test": {"A": ["127.0.0.123"]},  # no MX at all: the implicit MX (RFC 5321 §5.1)
    "nullmx.test": {"MX": [(0, ".")]},  # RFC 7505
    "dead.test": {"MX": [(10, "mx1.dead.test."), (20, "mx2.dead.test.")]},
    "mx1.dead.test": {"A": ["127.0.0.126"]},  # greets with 554
    "mx2.dead.test": {"A": ["127.0.0.121"]},  # refuses the connection
    "remote.test": {"MX": [(10, "mx.remote.test.")]},
    "mx.remote.test": {"A": ["127.0.0.124"]},
    "postfix.test": {"MX": [(10, "mx.postfix.test.")]},
    "mx.postfix.test": {"A": ["127.0.0.129"]},
    "broken.test": {"behaviour": "servfail"},
}


# -- the remote peer ---------------------------------------------------------------------------


@dataclass
class Received:
    sender: str
    recipients: list[str]
    rcpt_params: list[RcptParams]
    mail_params: MailParams
    data: bytes
    tls: bool
    auth: str | None

    def parsed(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    def report(self) -> list[Message]:
        """A DSN's status blocks (per message, then per recipient), read from the raw part so that
        message/global-delivery-status works too (the email package only splits the ASCII type)."""
        msg = self.parsed()
        assert msg.get_content_type() == "multipart/report", msg.get_content_type()
        boundary = msg.get_boundary()
        assert boundary is not None
        part = self.data.split(f"--{boundary}".encode())[2]
        head, _, body = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        assert b"delivery-status" in head, head
        parser = email.parser.BytesHeaderParser(policy=email.policy.default)
        return [
            parser.parsebytes(block.strip() + b"\r\n") for block in body.split(b"\r\n\r\n") if block.strip()
        ]


class _PeerPolicy:
    def __init__(self, peer: Peer) -> None:
        self.peer = peer

    async def connect(self, info: SessionInfo) -> Reply | None:
        peer = self.peer
        peer.connections += 1
        peer.sessions += 1
        if peer.session_limit is not None and peer.sessions > peer.session_limit:
            peer.refused += 1
            return TOO_MANY_SESSIONS
        peer.max_sessions = max(peer.max_sessions, peer.sessions)
        return peer.greeting

    async def helo(self, info: SessionInfo, name: str) -> Reply | None:
        self.peer.helo_names.append(name)
        return None

    async def mail(self, info: SessionInfo, sender: Address | None, params: MailParams) -> Reply:
        self.peer.mail_commands += 1
        return SENDER_OK

    async def rcpt(self, info: SessionInfo, rcpt: Address, params: RcptParams) -> Reply:
        return self.peer.rcpt_replies.get(str(rcpt).lower(), RECIPIENT_OK)

    async def authenticate(
        self, info: SessionInfo, mechanism: str, authzid: str | None, username: str, password: str
    ) -> Reply:
        return AUTH_SUCCEEDED if (username, password) == self.peer.credentials else AUTH_FAILED

    async def data(self, info: SessionInfo, envelope: Envelope, message: bytes) -> Reply:
        peer = self.peer
        if peer.stall_after is not None and peer.answered >= peer.stall_after:
            peer.stalled.set()
            await asyncio.Event().wait()  # never answers: cancelled when the peer stops
        if peer.data_delay:
            await asyncio.sleep(peer.data_delay)
        reply = peer.data_replies.pop(0) if peer.data_replies else QUEUED
        if reply.is_positive:
            peer.answered += 1
            peer.messages.append(
                Received(
                    sender=str(envelope.sender) if envelope.sender else "",
                    recipients=[str(a) for a, _ in envelope.recipients],
                    rcpt_params=[p for _, p in envelope.recipients],
                    mail_params=envelope.params,
                    data=message,
                    tls=info.tls_active,
                    auth=info.authenticated,
                )
            )
            peer.arrived.set()
        return reply

    def disconnected(self, info: SessionInfo) -> None:
        self.peer.sessions -= 1


@dataclass
class Peer:
    host: str
    port: int
    name: str = "mx.remote.test"
    tls: ssl.SSLContext | None = None
    credentials: tuple[str, str] | None = None  # offer AUTH (after TLS) and accept these
    dsn: bool = True
    smtputf8: bool = True
    pipelining: bool = True
    rcpt_replies: dict[str, Reply] = field(default_factory=dict)
    data_replies: list[Reply] = field(default_factory=list)  # consumed in order, then 250
    stall_after: int | None = None  # after this many 250s, every DATA hangs
    greeting: Reply | None = None  # e.g. 554: refuse every connection
    session_limit: int | None = None  # sessions open at once; more get TOO_MANY_SESSIONS (421)
    refused: int = 0  # sessions refused for that limit
    messages: list[Received] = field(default_factory=list)
    helo_names: list[str] = field(default_factory=list)
    connections: int = 0
    sessions: int = 0  # open now
    max_sessions: int = 0  # most open at once
    data_delay: float = 0.0  # seconds before answering DATA
    mail_commands: int = 0
    answered: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    _listener: SmtpListener | None = None

    def settings(self, _peer: tuple[str, int]) -> SessionSettings:
        return SessionSettings(
            fqdn=self.name,
            tls_available=self.tls is not None,
            auth_mechanisms=("PLAIN", "LOGIN") if self.credentials else (),
            auth_requires_tls=True,
            max_recipients=1000,
            dsn=self.dsn,
            smtputf8=self.smtputf8,
            pipelining=self.pipelining,
        )

    async def start(self) -> Peer:
        self._listener = SmtpListener(
            self.settings, lambda _s: _PeerPolicy(self), self.tls, idle_timeout=30.0
        )
        await self._listener.start(self.host, self.port)
        return self

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop(grace=0.5)
            self._listener = None

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.messages


def peer_tls(directory: Path, name: str, *addresses: str) -> tuple[ssl.SSLContext, Path]:
    """A server context with a self-signed certificate for `name`; returns it and the cert (a CA file)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    ensure_certificate(cert, key, name, addresses)
    return server_context(cert, key), cert


# -- the directory ----------------------------------------------------------------------------


class Directory:
    """Send connectors, the organization's domain, and distribution groups of contacts."""

    def __init__(self, connectors: Sequence[SendConnector] = ()) -> None:
        self.connectors = list(connectors)
        self.groups: dict[str, list[str]] = {}  # group address → external member addresses

    def recipient(self, address: str) -> Recipient | None:
        key = address.lower()
        if key in self.groups:
            return Recipient(
                id=hash(key) & 0xFFFF,
                kind=RecipientKind.GROUP,
                display_name=key,
                primary_address=key,
                addresses=(key,),
            )
        for members in self.groups.values():
            if key in members:
                rid = 0x10000 + members.index(key)
                return Recipient(
                    id=rid,
                    kind=RecipientKind.CONTACT,
                    display_name=key,
                    primary_address=key,
                    addresses=(key,),
                    external_address=key,
                )
        return None

    def members(self, group_id: int) -> Sequence[Recipient]:
        for group, members in self.groups.items():
            if hash(group) & 0xFFFF == group_id:
                return [r for m in members if (r := self.recipient(m)) is not None]
        return []

    def accepted_domain(self, domain: str) -> AcceptedDomain | None:
        return (
            AcceptedDomain(ORG_DOMAIN, DomainType.AUTHORITATIVE, True)
            if domain.lower() == ORG_DOMAIN
            else None
        )

    def send_connectors(self) -> Sequence[SendConnector]:
        return self.connectors

    def database(self, name: str) -> MailboxDatabase | None:
        return None


# -- the transport ----------------------------------------------------------------------------


@dataclass
class Outbound:
    root: Path
    directory: Directory
    queue: QueueStore
    blobs: BlobStore
    tracking: TrackingLog
    smtp: SmtpDelivery
    service: TransportService
    config: list[TransportConfig]  # config[0] is read on every use: tests change it live

    def events(self, event_id: str | None = None, **criteria: Any) -> list[dict[str, Any]]:
        return search_tracking(self.tracking.directory, event_id=event_id, **criteria)

    async def submit(
        self,
        sender: str,
        recipients: Sequence[str | EnvelopeRecipient],
        body: bytes = b"Hello.\r\n",
        *,
        subject: str = "Test message",
        headers: bytes = b"",
        body_type: str = "7BIT",
        **mail_params: Any,
    ) -> Accepted:
        """Submit as an authenticated client would; `mail_params`: ret, envid, smtputf8."""
        rcpts = [r if isinstance(r, EnvelopeRecipient) else EnvelopeRecipient(r) for r in recipients]
        data = (
            f"From: <{sender}>\r\nTo: <{rcpts[0].address}>\r\nSubject: {subject}\r\n".encode()
            + headers
            + b"\r\n"
            + body
        )
        return await self.service.submit(
            Submission(
                sender=sender,
                recipients=rcpts,
                data=data,
                client_ip="127.0.0.1",
                helo="client.test",
                is_submission=True,
                mail_params={"ret": None, "envid": None, "body": body_type, **mail_params},
            )
        )

    async def rows(self) -> list[tuple[QueuedMessage, QueuedRecipient]]:
        """Every active recipient, due or not."""
        return await self.queue.due(time.time() + 10**9)

    async def row(self, address: str) -> QueuedRecipient | None:
        return next((r for _, r in await self.rows() if r.address == address), None)

    async def deferred(self, address: str) -> QueuedRecipient | None:
        """The recipient's row once an attempt has deferred it."""
        row = await self.row(address)
        return row if row is not None and row.status == "retry" and row.last_error else None

    async def until(self, check: Callable[[], Any], timeout: float = 10.0, *, what: str = "condition") -> Any:
        """Poll an async or plain condition until it is true (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.service.stop()
        await self.queue.close()


def fast_config(**changes: float) -> TransportConfig:
    """Seconds instead of minutes and days, so retries and expiry happen within a test."""
    base = TransportConfig(
        message_expiration_timeout=60.0,
        delay_notification_timeout=3600.0,
        message_retry_interval=0.5,
        transient_failure_retry_interval=0.2,
        transient_failure_retry_count=2,
    )
    return dataclasses.replace(base, **changes)


async def build_outbound(
    root: Path,
    directory: Directory,
    *,
    nameservers: Sequence[str] = (),
    mx_port: int = 25,
    cafile: str | None = None,
    config: TransportConfig | None = None,
    scan_interval: float = 0.1,
    connections: Connections | None = None,
) -> Outbound:
    queue = await QueueStore.open(root / "queue" / "queue.db")
    blobs = BlobStore(root / "blobs")
    tracking = TrackingLog(root / "tracking", "MBX01")
    holder = [config or fast_config()]
    resolver = NextHopResolver(list(nameservers) or ["127.0.0.1:9"], timeout=1.0, attempts=1)
    smtp = SmtpDelivery(
        queue=queue,
        blobs=blobs,
        tracking=tracking,
        connectors=directory.send_connectors,
        resolver=resolver,
        fqdn=FQDN,
        transport_config=lambda: holder[0],
        protocol_log=ProtocolLog(root / "protocol", lambda _: True, "SEND"),
        cafile=cafile,
        mx_port=mx_port,
        connections=connections,
    )
    local = LocalDelivery(
        databases=lambda _name: None, queue=queue, tracking=tracking, directory=lambda: directory
    )
    service = TransportService(
        server="MBX01",
        fqdn=FQDN,
        queue=queue,
        blobs=blobs,
        directory=lambda: directory,
        transport_config=lambda: holder[0],
        tracking=tracking,
        local=local,
        smtp=smtp,
        scan_interval=scan_interval,
    )
    await service.start()
    return Outbound(root, directory, queue, blobs, tracking, smtp, service, holder)


# -- fixtures (test modules import them by these names; pytest knows them as dns, bounces, out) --


@pytest.fixture(name="dns")
async def dns_fixture() -> AsyncIterator[DnsServer]:
    server = await start_dns_server(ZONE, DNS_HOST)
    yield server
    await server.stop()


@pytest.fixture(name="bounces")
async def bounces_fixture() -> AsyncIterator[Peer]:
    """The sender's MX: where DSNs arrive."""
    peer = await Peer("127.0.0.128", MX_PORT, name="mx.sender.test").start()
    yield peer
    await peer.stop()


@pytest.fixture(name="out")
async def out_fixture(tmp_path: Path, dns: DnsServer) -> AsyncIterator[Outbound]:
    """The transport with the Internet connector (DNS routing, protocol log at Verbose)."""
    transport = await build_outbound(
        tmp_path, Directory([INTERNET]), nameservers=[dns.address], mx_port=MX_PORT
    )
    yield transport
    await transport.close()


# -- the transport as a process (crash test) ------------------------------------------------------


async def _run_process(args: argparse.Namespace) -> None:
    connector = SendConnector(
        name="Partner",
        address_spaces=(("partner.test", 1),),
        dns_routing_enabled=False,
        smart_hosts=(args.smart_host,),
        port=args.port,
    )
    out = await build_outbound(Path(args.dir), Directory([connector]), scan_interval=0.2)
    for i in range(args.submit):
        await out.submit(
            "alice@sender.test",
            [f"user{i % 3}@partner.test"],
            subject=f"crash {i}",
            headers=f"X-Seq: {i}\r\n".encode(),
        )
    print(f"submitted {args.submit}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="run the outbound transport until killed")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--smart-host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--submit", type=int, default=0)
    asyncio.run(_run_process(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
