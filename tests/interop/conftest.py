"""Interop fixtures: a real `courriel serve` with IMAP4 and POP3 enabled, and the tools' files.

One all-in-one server for the whole interop run (client-access + mailbox on 127.0.0.1, a free
port offset), started as a subprocess like production (tests/integration/mailserver.py). Each
test takes its own mailbox from a pool made before the server starts, so tests never see each
other's mail. Mail arrives the way it does in production: SMTP to the front end's port 25.
Clients verify the server's self-signed certificate against its own file (`cafile`).
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest

from courriel.config import load_config
from courriel.org.directory import Directory
from tests.integration.mailserver import PASSWORD, MailServer, create_organization
from tests.integration.protocol_env import free_offset

HOST = "127.0.0.1"
PORTS = {
    "smtp": 25,
    "pop3": 110,
    "pop3s": 995,
    "imap": 143,
    "imaps": 993,
}
POOL = 40
TOOL_TIMEOUT = 120


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


@dataclass
class ProtocolServer:
    server: MailServer
    cafile: Path
    users: list[str] = field(default_factory=list)
    password: str = PASSWORD

    @property
    def fqdn(self) -> str:
        return self.server.config.fqdn

    def port(self, name: str) -> int:
        return PORTS[name] + self.server.offset

    def take_user(self) -> str:
        return self.users.pop()

    def send(self, rcpt: str, subject: str, body: str = "Hello.\n") -> None:
        """Mail from the Internet, through the front end's "Default Frontend" connector."""
        message = EmailMessage()
        message["From"] = "sender@example.net"
        message["To"] = rcpt
        message["Subject"] = subject
        message["Message-ID"] = f"<{subject.replace(' ', '.')}.{time.monotonic_ns()}@example.net>"
        message.set_content(body)
        with smtplib.SMTP(HOST, self.port("smtp"), timeout=30) as smtp:
            smtp.send_message(message, "sender@example.net", [rcpt])

    def inbox(self, address: str, expect: int) -> list[bytes]:
        """The Inbox once it holds `expect` messages (delivery is asynchronous)."""
        found = self.server.inbox(address, timeout=20.0, expect=expect)
        assert len(found) == expect, f"{address}: {len(found)} messages, expected {expect}"
        return found

    def context(self) -> ssl.SSLContext:
        """A client context that trusts the server's certificate."""
        return ssl.create_default_context(cafile=str(self.cafile))

    def run(
        self,
        *command: str | Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        ok: tuple[int, ...] = (0,),
    ) -> subprocess.CompletedProcess[str]:
        """A third-party tool, with its output in the assertion message when it fails."""
        done = subprocess.run(
            [str(c) for c in command], capture_output=True, text=True, timeout=TOOL_TIMEOUT, cwd=cwd, env=env
        )
        assert done.returncode in ok, f"{command[0]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done


async def _prepare(root: Path, offset: int) -> tuple[Path, list[str]]:
    config_path = await create_organization(root, directory_url=None, mailbox_db_url=None, offset=offset)
    users = [f"user{n:02d}@example.test" for n in range(POOL)]
    config = load_config(str(config_path))
    directory = await Directory.open(config.directory_url, config.data_dir)
    try:
        for address in users:
            await directory.new_mailbox(address, address.split("@")[0], PASSWORD)
        for protocol in ("imap", "pop"):
            await directory.set_protocol_settings(protocol, enabled=True)
    finally:
        await directory.close()
    return config_path, users


@pytest.fixture(scope="session")
def protocol_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProtocolServer]:
    offset = free_offset()
    config_path, users = asyncio.run(_prepare(tmp_path_factory.mktemp("interop-org"), offset))
    server = MailServer(config_path, offset)
    server.start()
    try:
        deadline = time.monotonic() + 20
        wanted = [PORTS[name] + offset for name in ("pop3", "pop3s", "imap", "imaps")]
        while not all(listening(port) for port in wanted):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"IMAP4/POP3 front ends not listening on {wanted}: {server.log_path.read_text()[-2000:]}"
                )
            time.sleep(0.1)
        yield ProtocolServer(server, server.config.tls_certificate, users)
    finally:
        server.stop()
