"""In-process fixtures for the POP3/IMAP4 back ends and the Client Access front ends.

An organization in a SQLite directory with a Mailbox server MBX1 (reached on 127.0.0.2) and a
Client Access server CAS1 (127.0.0.3), the database DB01 on MBX1, alice and bob (password
`secret`), POP3 and IMAP4 enabled; TLS from a throwaway self-signed certificate that names
every loopback address used; a line client for transcript-style tests.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from courriel.mailbox.model import DeliveryRequest
from courriel.mailbox.store import MailboxDatabase
from courriel.org.cache import DirectoryCache
from courriel.org.directory import Directory
from courriel.org.model import Recipient
from courriel.security.tls import client_context, ensure_certificate, server_context
from tests.integration import mailserver

PASSWORD = "secret"
BACKEND_HOST = "127.0.0.2"
FRONTEND_HOST = "127.0.0.3"
TIMEOUT = 10.0


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext  # verifies our certificate
    cafile: Path


def make_tls(folder: Path) -> Tls:
    cert, key = folder / "server.crt", folder / "server.key"
    ensure_certificate(cert, key, "mbx1.example.test", ["127.0.0.1", BACKEND_HOST, FRONTEND_HOST])
    return Tls(server_context(cert, key), client_context(True, cafile=str(cert)), cert)


def plain(username: str, password: str) -> str:
    return base64.b64encode(f"\0{username}\0{password}".encode()).decode()


# Every port an all-in-one server binds: the SMTP ones and the protocols, front and back ends.
ALL_PORTS = (25, 587, 717, 2525, 465, 110, 143, 993, 995, 1110, 1143, 1993, 1995)


def free_offset(host: str = "127.0.0.1", ports: tuple[int, ...] = ALL_PORTS) -> int:
    """A port offset under which all `ports` are free on `host` now (the harness's rule)."""
    return mailserver.free_offset(host, ports)


async def make_organization(directory: Directory) -> None:
    await directory.init_organization("Contoso")
    await directory.add_accepted_domain("example.test")
    await register_mbx1(directory, 0)
    await directory.register_server("CAS1", "cas1.example.test", ["client-access"], addresses=[FRONTEND_HOST])
    await directory.new_database("DB01", "sqlite:///databases/DB01.db", "MBX1")
    await directory.new_mailbox("alice@example.test", "Alice", PASSWORD)
    await directory.new_mailbox("bob@example.test", "Bob", PASSWORD)
    for protocol in ("imap", "pop"):
        await directory.set_protocol_settings(protocol, enabled=True)


async def register_mbx1(directory: Directory, port_offset: int) -> None:
    await directory.register_server(
        "MBX1", "mbx1.example.test", ["mailbox"], addresses=[BACKEND_HOST], port_offset=port_offset
    )


_template: Path | None = None


async def open_directory(folder: Path, backend_offset: int = 0) -> Directory:
    """A fresh copy of the organization in `folder`: built once per test process (argon2 hashing
    and schema creation cost more than a file copy), MBX1 at `backend_offset`."""
    global _template
    if _template is None:
        root = Path(tempfile.mkdtemp(prefix="courriel-org-"))
        atexit.register(shutil.rmtree, root, True)
        template = await Directory.open(f"sqlite:///{root / 'directory.db'}")
        try:
            await make_organization(template)
        finally:
            await template.close()
        _template = root / "directory.db"
    shutil.copyfile(_template, folder / "directory.db")
    directory = await Directory.open(f"sqlite:///{folder / 'directory.db'}")
    if backend_offset:
        await register_mbx1(directory, backend_offset)
    return directory


def message(n: int, body: str = "") -> bytes:
    text = body or f"Body of message {n}.\r\n.starts with a dot\r\nlast line\r\n"
    return (
        f"From: sender@example.net\r\nTo: alice@example.test\r\nSubject: message {n}\r\n"
        f"Message-ID: <m{n}@example.net>\r\n\r\n{text}"
    ).encode()


async def deliver(store: MailboxDatabase, recipient: Recipient, data: bytes, key: str) -> int:
    assert recipient.guid is not None
    blob = await store.blobs.put(data)
    result = await store.deliver(
        DeliveryRequest(recipient.guid, recipient.primary_address, blob, key, datetime.now(UTC))
    )
    assert result.status == "delivered" and result.uid is not None
    return result.uid


async def refresh(cache: DirectoryCache) -> None:
    assert await cache.refresh()


class LineClient:
    """A raw client: send lines, read replies, upgrade to TLS."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, tls: ssl.SSLContext | None = None) -> LineClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=tls), TIMEOUT)
        return cls(reader, writer)

    async def send(self, data: str | bytes) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def line(self) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
        return raw.decode("utf-8", "replace")

    async def ask(self, command: str) -> str:
        await self.send(command + "\r\n")
        return await self.line()

    async def multiline(self) -> list[str]:
        """The lines of a POP3 multi-line body, up to the terminating dot (not unstuffed)."""
        lines = []
        while (text := await self.line()) != ".\r\n":
            if not text:
                raise ConnectionError("closed inside a multi-line response")
            lines.append(text.removesuffix("\r\n"))
        return lines

    async def until_tagged(self, tag: str) -> list[str]:
        """IMAP: every line up to and including the one tagged `tag`."""
        lines = []
        while True:
            text = await self.line()
            if not text:
                raise ConnectionError("closed before the tagged response")
            lines.append(text.removesuffix("\r\n"))
            if text.startswith(tag + " "):
                return lines

    async def starttls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        await asyncio.wait_for(self.writer.start_tls(context, server_hostname=server_hostname), TIMEOUT)

    async def rest(self) -> bytes:
        """Everything the server still sends until it closes the connection."""
        return await asyncio.wait_for(self.reader.read(), TIMEOUT)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass
