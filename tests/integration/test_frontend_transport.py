"""Front End Transport between two `courriel serve` processes: a Client Access server and a Mailbox server.

CAS1 (client-access only: no queue, no databases) listens on 127.0.0.41, MBX1 (mailbox only) on
127.0.0.42, each with its own port offset; both share one organization directory (a SQLite file,
then PostgreSQL). Mail from the Internet reaches MBX1's mailboxes only through CAS1's "Default
Frontend"; with MBX1 stopped the client gets a 4xx and nothing is lost, and the mail flows again
once it is back; MBX1's 5xx reaches the client; authenticated submissions on CAS1's 587 go through
"Client Proxy MBX1" to a local mailbox and, by a send connector, to a recording SMTP server; and
"Outbound Proxy Frontend" (717) relays a Mailbox server's outbound mail to its next hop.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from courriel.admin.commands.setup import ServerSetup, init_server
from courriel.org.directory import Directory
from courriel.security.orgca import OrgCredentials
from tests.conftest import create_pg_database, drop_pg_database, postgres_available, require
from tests.integration.mailserver import PASSWORD, MailServer, _listening, free_offset
from tests.integration.outbound_env import Peer, Received

CAS_HOST, MBX_HOST, HOP_HOST = "127.0.0.41", "127.0.0.42", "127.0.0.43"
CAS_PORTS = (25, 587, 717, 143, 993, 110, 995)
MBX_PORTS = (25, 465, 1143, 1993, 1110, 1995)


@dataclass
class Pair:
    cas: MailServer
    mbx: MailServer
    hop: Recorder

    def cas_port(self, port: int) -> int:
        return port + self.cas.offset

    def courriel(self, *args: str) -> None:
        done = self.mbx.courriel(*args)
        assert done.returncode == 0, done.stderr


class Recorder:
    """A recording SMTP next hop (the Internet) on an event loop thread of its own."""

    def __init__(self, host: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # free_offset over the single port 0 is a free port (below the ephemeral range)
        self.peer = Peer(host, free_offset(host, (0,)), name="mx.elsewhere.test")
        asyncio.run_coroutine_threadsafe(self.peer.start(), self.loop).result(10)

    @property
    def port(self) -> int:
        return self.peer.port

    def wait(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.peer.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.peer.messages)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.peer.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def _organization(root: Path, url: str, cas_offset: int, mbx_offset: int, hop_port: int) -> tuple[Path, Path]:
    def setup(name: str, roles: tuple[str, ...], host: str, offset: int) -> ServerSetup:
        return ServerSetup(
            config_path=root / name.lower() / "courriel.toml", server=name, fqdn=f"{name.lower()}.example.test",
            roles=roles, listen=(host,), port_offset=offset, directory_url=url,
        )

    mbx = await init_server(setup("MBX1", ("mailbox",), MBX_HOST, mbx_offset), organization="Courriel Test", domain="example.test")
    cas = await init_server(setup("CAS1", ("client-access",), CAS_HOST, cas_offset), organization=None, domain=None, join=True)
    directory = await Directory.open(mbx.config.directory_url, mbx.config.data_dir)
    try:
        await directory.new_mailbox("alice@example.test", "Alice", PASSWORD, None)
        await directory.new_mailbox("bob@example.test", "Bob", PASSWORD, None)
        await directory.new_mailbox("carol@example.test", "Carol", PASSWORD, None)
        hop = {"dns_routing_enabled": False, "smart_hosts": (HOP_HOST,), "port": hop_port}
        await directory.new_send_connector("To elsewhere", address_spaces=(("elsewhere.test", 1),), **hop)
        await directory.new_send_connector(
            "Via front end", address_spaces=(("partner.test", 1),), front_end_proxy_enabled=True, **hop
        )
    finally:
        await directory.close()
    return cas.config.path, mbx.config.path


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp(f"split-{request.param}")
    url = f"sqlite:///{root / 'directory.db'}"
    if request.param == "postgresql":
        require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
        url = asyncio.run(create_pg_database())
    cas_offset, mbx_offset = free_offset(CAS_HOST, CAS_PORTS), free_offset(MBX_HOST, MBX_PORTS)
    hop = Recorder(HOP_HOST)
    cas_path, mbx_path = asyncio.run(_organization(root, url, cas_offset, mbx_offset, hop.port))
    mbx = MailServer(mbx_path, mbx_offset, MBX_HOST, wait_for=((MBX_HOST, 25 + mbx_offset), (MBX_HOST, 465 + mbx_offset)))
    cas = MailServer(cas_path, cas_offset, CAS_HOST, wait_for=tuple((CAS_HOST, p + cas_offset) for p in (25, 587, 717)))
    mbx.start()
    cas.start()
    try:
        yield Pair(cas, mbx, hop)
    finally:
        cas.stop()
        mbx.stop()
        hop.close()
        if request.param == "postgresql":
            asyncio.run(drop_pg_database(url))


def message(to: str, sender: str = "someone@remote.test", body: str = "") -> tuple[EmailMessage, str]:
    token = uuid.uuid4().hex
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, f"token {token}"
    msg.set_content(body or f"token {token}\n")
    return msg, token


def with_token(messages: list[bytes], token: str) -> list[bytes]:
    return [m for m in messages if token.encode() in m]


def send_inbound(pair: Pair, msg: EmailMessage) -> None:
    with smtplib.SMTP(CAS_HOST, pair.cas_port(25), timeout=30) as smtp:
        smtp.send_message(msg)


def test_inbound_reaches_the_mailbox_through_the_front_end(pair: Pair) -> None:
    msg, token = message("alice@example.test")
    send_inbound(pair, msg)
    got = with_token(pair.mbx.inbox("alice@example.test", expect=1, timeout=20), token)
    assert len(got) == 1
    # Both hops left their trace: the front end's Received field below the Mailbox server's.
    assert b"by cas1.example.test" in got[0] and b"by mbx1.example.test" in got[0]
    assert b"X-Courriel-Organization-AuthAs: Anonymous" in got[0]
    assert not list((pair.cas.config.data_dir).glob("**/queue*.db"))  # the front end never queues


def test_imap_through_the_client_access_server(pair: Pair) -> None:
    """CAS1 has no mailbox role; its IMAP4 front end proxies to MBX1's back end."""
    msg, token = message("alice@example.test")
    before = len(pair.mbx.inbox("alice@example.test"))
    send_inbound(pair, msg)
    pair.mbx.inbox("alice@example.test", expect=before + 1, timeout=20)
    pair.courriel("imap-settings", "set", "--enabled", "true")
    for _ in range(200):  # until both servers have seen the setting: CAS1's front end, MBX1's back end
        if _listening(CAS_HOST, pair.cas_port(993)) and _listening(MBX_HOST, 1993 + pair.mbx.offset):
            break
        time.sleep(0.05)
    with imaplib.IMAP4_SSL(CAS_HOST, pair.cas_port(993), ssl_context=ssl._create_unverified_context()) as imap:
        imap.login("alice@example.test", PASSWORD)
        imap.select("INBOX", readonly=True)
        status, found = imap.search(None, "SUBJECT", f'"token {token}"')
        assert status == "OK" and len(found[0].split()) == 1


def test_a_stopped_backend_gives_4xx_and_mail_flows_again_when_it_returns(pair: Pair) -> None:
    before = len(pair.mbx.inbox("bob@example.test"))
    msg, token = message("bob@example.test")
    pair.mbx.stop()
    try:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            send_inbound(pair, msg)
        assert 400 <= caught.value.smtp_code < 500
    finally:
        pair.mbx.start()
    send_inbound(pair, msg)  # the client's retry
    got = pair.mbx.inbox("bob@example.test", expect=before + 1, timeout=20)
    assert len(with_token(got, token)) == 1


def test_a_backend_5xx_is_passed_on_to_the_client(pair: Pair) -> None:
    """Only the Mailbox server knows how full carol's mailbox is: its 552 reaches the client."""
    msg, _ = message("carol@example.test", body="x" * 4000)
    send_inbound(pair, msg)
    pair.mbx.inbox("carol@example.test", expect=1, timeout=20)
    pair.courriel("mailbox", "set", "carol@example.test", "--prohibit-send-receive-quota", "1KB")
    code = None
    for _ in range(100):  # until MBX1 has seen the quota (a directory change)
        try:
            send_inbound(pair, message("carol@example.test")[0])
        except smtplib.SMTPDataError as exc:
            code = exc.smtp_code
            break
        time.sleep(0.1)
    assert code == 552


def submit(pair: Pair, msg: EmailMessage) -> None:
    with smtplib.SMTP(CAS_HOST, pair.cas_port(587), timeout=30) as smtp:
        smtp.starttls(context=ssl._create_unverified_context())
        smtp.login("alice@example.test", PASSWORD)
        smtp.send_message(msg)


def test_submission_on_587_reaches_a_local_mailbox(pair: Pair) -> None:
    msg, token = message("bob@example.test", sender="alice@example.test")
    before = len(pair.mbx.inbox("bob@example.test"))
    submit(pair, msg)
    got = with_token(pair.mbx.inbox("bob@example.test", expect=before + 1, timeout=20), token)
    assert len(got) == 1 and b"Message-ID:" in got[0]


def test_submission_on_587_leaves_by_a_send_connector(pair: Pair) -> None:
    msg, token = message("friend@elsewhere.test", sender="alice@example.test")
    before = len(pair.hop.peer.messages)
    submit(pair, msg)
    got = [m for m in pair.hop.wait(before + 1) if token.encode() in m.data]
    assert len(got) == 1 and got[0].recipients == ["friend@elsewhere.test"]
    assert b"X-Courriel-Organization-" not in got[0].data


def test_outbound_proxy_frontend_relays_to_the_next_hop(pair: Pair, tmp_path: Path) -> None:
    """MBX1's side of 717 is played by smtplib with MBX1's organization certificate."""
    context = asyncio.run(_server_context(pair, tmp_path))
    msg, token = message("someone@partner.test", sender="alice@example.test")
    msg["X-Courriel-Organization-AuthAs"] = "Internal"
    before = len(pair.hop.peer.messages)
    with smtplib.SMTP(CAS_HOST, pair.cas_port(717), timeout=30) as smtp:
        smtp.starttls(context=context)
        smtp.send_message(msg)
    got = [m for m in pair.hop.wait(before + 1) if token.encode() in m.data]
    assert len(got) == 1 and got[0].recipients == ["someone@partner.test"]
    assert b"X-Courriel-Organization-" not in got[0].data


def test_outbound_proxy_frontend_refuses_a_client_without_the_organization_certificate(pair: Pair) -> None:
    msg, _ = message("someone@partner.test", sender="alice@example.test")
    with smtplib.SMTP(CAS_HOST, pair.cas_port(717), timeout=30) as smtp:
        smtp.starttls(context=ssl._create_unverified_context())
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            smtp.send_message(msg)
    assert caught.value.smtp_code == 530


def test_submission_through_a_front_end_proxied_send_connector(pair: Pair) -> None:
    """The whole seed flow: 587 → Client Proxy MBX1 → queue → "Via front end" → 717 → next hop."""
    msg, token = message("buyer@partner.test", sender="alice@example.test")
    before = len(pair.hop.peer.messages)
    submit(pair, msg)
    got = [m for m in pair.hop.wait(before + 1) if token.encode() in m.data]
    assert len(got) == 1 and got[0].recipients == ["buyer@partner.test"]
    assert b"by cas1.example.test" in got[0].data.split(b"\r\n\r\n")[0]


async def _server_context(pair: Pair, tmp_path: Path) -> ssl.SSLContext:
    config = pair.mbx.config
    directory = await Directory.open(config.directory_url, config.data_dir)
    try:
        ca_cert, ca_key = await directory.certificate_authority(await directory.organization_name() or "")
    finally:
        await directory.close()
    creds = OrgCredentials.ensure(tmp_path, ca_cert, ca_key, "MBX1", "mbx1.example.test", (MBX_HOST,))
    return creds.client_context()
