"""The SMTP listener on 127.0.0.1 with real clients: smtplib, aiosmtplib and a raw socket.

Covers STARTTLS (with a throwaway self-signed certificate), implicit TLS, AUTH PLAIN and LOGIN,
pipelining, a 1 MB message, BDAT, SMTPUTF8, a failing policy, timeouts, shutdown, and the
STARTTLS command injection defence (CVE-2011-0411) at the socket level.
"""

from __future__ import annotations

import asyncio
import datetime
import email.message
import ipaddress
import smtplib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from courriel.core.address import Address
from courriel.core.replies import (
    AUTH_FAILED,
    AUTH_SUCCEEDED,
    QUEUED,
    RECIPIENT_OK,
    SENDER_OK,
    Reply,
)
from courriel.proto.smtp import Envelope, MailParams, RcptParams, SessionInfo, SessionSettings
from courriel.services.smtp_server import SmtpListener

HOST = "127.0.0.1"
TIMEOUT = 10.0


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A throwaway self-signed certificate for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.minimum_version = ssl.TLSVersion.TLSv1_2
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return Tls(server, client)


@dataclass
class MemoryPolicy:
    """Accepts mail for anyone but nobody@, fails on boom@, knows alice/secret, stores messages."""

    messages: list[tuple[Envelope, bytes, SessionInfo]] = field(default_factory=list)
    gone: list[SessionInfo] = field(default_factory=list)

    async def connect(self, info: SessionInfo) -> Reply | None:
        return None

    async def helo(self, info: SessionInfo, name: str) -> Reply | None:
        return None

    async def mail(self, info: SessionInfo, sender: Address | None, params: MailParams) -> Reply:
        return SENDER_OK

    async def rcpt(self, info: SessionInfo, rcpt: Address, params: RcptParams) -> Reply:
        if rcpt.local == "boom":
            raise RuntimeError("directory unreachable")
        if rcpt.local == "nobody":
            return Reply(550, "5.1.1", "User unknown")
        return RECIPIENT_OK

    async def authenticate(
        self, info: SessionInfo, mechanism: str, authzid: str | None, username: str, password: str
    ) -> Reply:
        return AUTH_SUCCEEDED if (username, password) == ("alice", "secret") else AUTH_FAILED

    async def data(self, info: SessionInfo, envelope: Envelope, message: bytes) -> Reply:
        self.messages.append((envelope, message, info))
        return QUEUED

    def disconnected(self, info: SessionInfo) -> None:
        self.gone.append(info)


@dataclass
class Server:
    listener: SmtpListener
    policy: MemoryPolicy
    log: list[tuple[str, str, str]]
    peers: list[tuple[str, int]]

    @property
    def port(self) -> int:
        return self.listener.port


StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start_server(tls: Tls) -> AsyncIterator[StartServer]:
    listeners: list[SmtpListener] = []

    async def start(
        *,
        implicit_tls: bool = False,
        idle_timeout: float = 30.0,
        connection_timeout: float = 60.0,
        **settings: Any,
    ) -> Server:
        policy = MemoryPolicy()
        log: list[tuple[str, str, str]] = []
        peers: list[tuple[str, int]] = []

        def settings_factory(peer: tuple[str, int]) -> SessionSettings:
            peers.append(peer)
            return SessionSettings(fqdn="mx.test", connector="Test", tls_available=True, **settings)

        listener = SmtpListener(
            settings_factory,
            lambda _settings: policy,
            tls.server,
            implicit_tls=implicit_tls,
            protocol_log=lambda *entry: log.append(entry),
            idle_timeout=idle_timeout,
            connection_timeout=connection_timeout,
        )
        await listener.start(HOST, 0)
        listeners.append(listener)
        return Server(listener, policy, log, peers)

    yield start
    for listener in listeners:
        await listener.stop(grace=1.0)


class RawClient:
    """A byte-level SMTP client for what the libraries do not do (pipelining, BDAT, injection)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(HOST, port)
        client = cls(reader, writer)
        assert (await client.reply()).startswith("220 ")
        return client

    async def reply(self) -> str:
        lines: list[str] = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), TIMEOUT)).decode()
            assert line.endswith("\r\n"), f"connection closed after {lines}"
            lines.append(line[:-2])
            if line[3] == " ":
                return "\n".join(lines)

    async def send(self, data: bytes, replies: int = 1) -> list[str]:
        self.writer.write(data)
        await self.writer.drain()
        return [await self.reply() for _ in range(replies)]

    async def close(self) -> None:
        self.writer.close()
        await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)


def _message(body: str = "Hello.\n", **headers: str) -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = headers.get("From", "alice@example.org")
    msg["To"] = headers.get("To", "bob@example.net")
    msg["Subject"] = headers.get("Subject", "Test")
    msg.set_content(body)
    return msg


async def test_smtplib_starttls_auth_plain_and_send(start_server: StartServer, tls: Tls) -> None:
    server = await start_server()

    def session() -> dict[str, object]:
        with smtplib.SMTP(HOST, server.port, timeout=TIMEOUT) as smtp:
            code, text = smtp.ehlo("client.test")
            features_before = dict(smtp.esmtp_features)
            smtp.starttls(context=tls.client)
            smtp.ehlo("client.test")
            smtp.login("alice", "secret")  # PLAIN, the first mechanism smtplib knows that we offer
            refused = smtp.sendmail(
                "alice@example.org",
                ["bob@example.net", "nobody@example.net"],
                _message().as_bytes(),
                rcpt_options=["NOTIFY=FAILURE"],
            )
            return {
                "code": code,
                "before": features_before,
                "after": dict(smtp.esmtp_features),
                "refused": refused,
            }

    result = await asyncio.to_thread(session)
    assert result["code"] == 250
    before, after = result["before"], result["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    assert "starttls" in before and "auth" not in before
    assert "starttls" not in after and after["auth"].strip() == "PLAIN LOGIN"
    assert result["refused"] == {"nobody@example.net": (550, b"5.1.1 User unknown")}
    [(envelope, message, info)] = server.policy.messages
    assert envelope.sender == Address("alice", "example.org")
    assert envelope.recipients == ((Address("bob", "example.net"), RcptParams(notify=("FAILURE",))),)
    assert b"Subject: Test\r\n" in message and b"\r\n\r\nHello.\r\n" in message
    assert info.tls_active and info.authenticated == "alice" and info.helo == "client.test"
    await _until(lambda: len(server.policy.gone) == 1)
    assert server.peers[0][0] == HOST


async def test_smtplib_auth_login_and_failure(start_server: StartServer, tls: Tls) -> None:
    server = await start_server()

    def session() -> tuple[int, int]:
        with smtplib.SMTP(HOST, server.port, timeout=TIMEOUT) as smtp:
            smtp.starttls(context=tls.client)
            smtp.ehlo()
            try:
                smtp.auth("LOGIN", lambda challenge=None: "alice", initial_response_ok=False)
            except smtplib.SMTPAuthenticationError as error:
                failed = error.smtp_code
            smtp.user, smtp.password = "alice", "secret"
            code, _ = smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
            return failed, code

    failed, code = await asyncio.to_thread(session)
    assert (failed, code) == (535, 235)


async def test_one_megabyte_message(start_server: StartServer, tls: Tls) -> None:
    server = await start_server()
    line = ".starts with a dot and is 76 characters long, as mail lines usually are....\r\n"
    body = (line * (1024 * 1024 // len(line) + 1)).encode()
    raw = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: big\r\n\r\n" + body

    def session() -> None:
        with smtplib.SMTP(HOST, server.port, timeout=TIMEOUT) as smtp:
            smtp.sendmail("a@example.org", ["b@example.net"], raw)

    await asyncio.to_thread(session)
    [(envelope, message, _)] = server.policy.messages
    assert message == raw
    assert len(message) > 1024 * 1024


async def test_pipelined_transaction_over_a_raw_socket(start_server: StartServer) -> None:
    server = await start_server()
    c = await RawClient.connect(server.port)
    [ehlo] = await c.send(b"EHLO raw.test\r\n")
    assert "\n250-PIPELINING\n" in ehlo
    replies = await c.send(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<nobody@example.net>\r\n"
        b"RCPT TO:<c@example.net>\r\nDATA\r\n",
        replies=5,
    )
    assert [r[:3] for r in replies] == ["250", "250", "550", "250", "354"]
    assert await c.send(b"Subject: p\r\n\r\n..x\r\n.\r\nQUIT\r\n", replies=2) == [
        "250 2.6.0 Queued mail for delivery",
        "221 2.0.0 Service closing transmission channel",
    ]
    await c.close()
    [(envelope, message, _)] = server.policy.messages
    assert [str(a) for a, _ in envelope.recipients] == ["b@example.net", "c@example.net"]
    assert message == b"Subject: p\r\n\r\n.x\r\n"


async def test_bdat_over_a_raw_socket(start_server: StartServer) -> None:
    server = await start_server()
    c = await RawClient.connect(server.port)
    await c.send(b"EHLO raw.test\r\n")
    chunk1 = b"Subject: b\r\n\r\n\x00binary\r\n.\r\n"
    chunk2 = b"\xff" * 70000
    replies = await c.send(
        b"MAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<b@example.net>\r\n"
        + b"BDAT %d\r\n" % len(chunk1)
        + chunk1
        + b"BDAT %d LAST\r\n" % len(chunk2)
        + chunk2,
        replies=4,
    )
    assert replies[2:] == [f"250 2.0.0 {len(chunk1)} octets received", "250 2.6.0 Queued mail for delivery"]
    await c.close()
    [(envelope, message, _)] = server.policy.messages
    assert message == chunk1 + chunk2 and envelope.params.body == "BINARYMIME"


async def test_smtputf8(start_server: StartServer) -> None:
    server = await start_server()
    msg = _message("Grüße\n", From="jöran@exämple.de", To="δοκιμή@παράδειγμα.δοκιμή")

    def session() -> None:
        with smtplib.SMTP(HOST, server.port, timeout=TIMEOUT) as smtp:
            smtp.send_message(msg)  # smtplib adds SMTPUTF8 for the non-ASCII addresses

    await asyncio.to_thread(session)
    [(envelope, _, _)] = server.policy.messages
    assert envelope.params.smtputf8
    assert envelope.sender == Address("jöran", "exämple.de")
    assert envelope.recipients[0][0] == Address("δοκιμή", "παράδειγμα.δοκιμή")


async def test_aiosmtplib_with_starttls_and_auth(start_server: StartServer, tls: Tls) -> None:
    server = await start_server()
    errors, response = await aiosmtplib.send(
        _message("from aiosmtplib\n"),
        hostname=HOST,
        port=server.port,
        start_tls=True,
        tls_context=tls.client,
        username="alice",
        password="secret",
        timeout=TIMEOUT,
    )
    assert errors == {} and response.startswith("2.6.0")
    [(envelope, message, info)] = server.policy.messages
    assert info.authenticated == "alice" and info.tls_active
    assert message.endswith(b"from aiosmtplib\r\n")


async def test_implicit_tls(start_server: StartServer, tls: Tls) -> None:
    server = await start_server(implicit_tls=True, auth_required=True)

    def session() -> dict[str, str]:
        with smtplib.SMTP_SSL(HOST, server.port, timeout=TIMEOUT, context=tls.client) as smtp:
            smtp.ehlo()
            smtp.login("alice", "secret")
            smtp.sendmail("alice@example.org", ["b@example.net"], b"Subject: s\r\n\r\nx\r\n")
            return dict(smtp.esmtp_features)

    features = await asyncio.to_thread(session)
    assert "starttls" not in features and "auth" in features
    [(_, _, info)] = server.policy.messages
    assert info.tls_active


async def test_plaintext_injected_after_starttls_is_ignored(start_server: StartServer, tls: Tls) -> None:
    server = await start_server()
    c = await RawClient.connect(server.port)
    await c.send(b"EHLO raw.test\r\n")
    assert await c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n") == ["220 2.0.0 SMTP server ready"]
    await asyncio.wait_for(c.writer.start_tls(tls.client, server_hostname="localhost"), TIMEOUT)
    # Had the MAIL been kept, this would be its 250 rather than the NOOP's.
    assert await c.send(b"NOOP\r\n") == ["250 2.0.0 OK"]
    [ehlo] = await c.send(b"EHLO raw.test\r\n")
    assert "STARTTLS" not in ehlo
    await c.close()


async def test_failing_policy_gets_451_and_the_session_goes_on(start_server: StartServer) -> None:
    server = await start_server()
    c = await RawClient.connect(server.port)
    await c.send(b"EHLO raw.test\r\nMAIL FROM:<a@example.org>\r\n", replies=2)
    replies = await c.send(b"RCPT TO:<boom@example.net>\r\nRCPT TO:<b@example.net>\r\n", replies=2)
    assert replies == ["451 4.3.0 Temporary server error, please try again later", "250 2.1.5 Recipient OK"]
    await c.close()


async def test_idle_timeout(start_server: StartServer) -> None:
    server = await start_server(idle_timeout=0.3)
    c = await RawClient.connect(server.port)
    assert await c.reply() == "421 4.4.2 Timeout exceeded, closing transmission channel"
    assert await asyncio.wait_for(c.reader.read(), TIMEOUT) == b""


async def test_activity_keeps_the_session_alive_until_the_connection_timeout(
    start_server: StartServer,
) -> None:
    server = await start_server(idle_timeout=0.4, connection_timeout=1.2)
    c = await RawClient.connect(server.port)
    for _ in range(5):
        await asyncio.sleep(0.2)
        assert await c.send(b"NOOP\r\n") == ["250 2.0.0 OK"]
    assert await c.reply() == "421 4.4.2 Timeout exceeded, closing transmission channel"
    assert await asyncio.wait_for(c.reader.read(), TIMEOUT) == b""


async def test_stop_closes_idle_sessions(start_server: StartServer) -> None:
    server = await start_server()
    c = await RawClient.connect(server.port)
    await c.send(b"EHLO raw.test\r\n")
    port = server.port
    await server.listener.stop(grace=5.0)
    assert await c.reply() == "421 4.3.2 Service shutting down, closing transmission channel"
    with pytest.raises(OSError):
        await RawClient.connect(port)


async def test_stop_lets_a_transaction_finish(start_server: StartServer) -> None:
    server = await start_server()
    c = await RawClient.connect(server.port)
    await c.send(
        b"EHLO raw.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n", replies=4
    )
    stopping = asyncio.create_task(server.listener.stop(grace=5.0))
    await asyncio.sleep(0.1)
    assert await c.send(b"late\r\n.\r\n") == ["250 2.6.0 Queued mail for delivery"]
    assert await c.reply() == "421 4.3.2 Service shutting down, closing transmission channel"
    await asyncio.wait_for(stopping, TIMEOUT)
    assert len(server.policy.messages) == 1


async def test_protocol_log(start_server: StartServer, tls: Tls) -> None:
    server = await start_server(auth_requires_tls=False)
    c = await RawClient.connect(server.port)
    await c.send(b"EHLO raw.test\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nQUIT\r\n", replies=3)
    await _until(lambda: any(d == "-" for _, _, d, _ in server.log))
    assert {connector for connector, _, _, _ in server.log} == {"Test"}
    lines = [(d, text) for _, _, d, text in server.log]
    assert lines[0][0] == "+" and lines[0][1].startswith("127.0.0.1:")
    assert ("<", "EHLO raw.test") in lines and ("<", "AUTH PLAIN ****") in lines
    assert (">", "250-mx.test Hello [127.0.0.1]") in lines and (
        ">",
        "235 2.7.0 Authentication successful",
    ) in lines
    assert not any("AGFsaWNl" in text for _, text in lines)
    assert len({sid for _, sid, _, _ in server.log}) == 1


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")
