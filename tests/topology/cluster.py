"""Three servers of one organization, as separate processes: the seed's split topology.

cas1 (Client Access) on 127.0.0.10, mbx1 and mbx2 (Mailbox) on 127.0.0.11 and .12, the
organization directory and both mailbox databases on PostgreSQL. As root, and when the seed's
ports are free there, every server binds the seed's real ports (25, 587, 143 …); otherwise all
three share one port offset. alice@example.test lives in DB1 on mbx1, bob@example.test in DB2 on
mbx2 (password courriel-test, IMAP4 and POP3 enabled), as in examples/three-servers.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from courriel.admin.commands.setup import ServerSetup, init_server
from courriel.org.directory import Directory
from tests.conftest import create_pg_database, drop_pg_database
from tests.integration.mailserver import EPHEMERAL_START, PASSWORD, MailServer

HOSTS = {"cas1": "127.0.0.10", "mbx1": "127.0.0.11", "mbx2": "127.0.0.12"}
ROLES = {"cas1": ("client-access",), "mbx1": ("mailbox",), "mbx2": ("mailbox",)}
# The seed's ports of each role (DESIGN.md §2), by the names the tests use.
CAS_PORTS = {"smtp": 25, "submission": 587, "outbound_proxy": 717, "imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995, "http": 80, "https": 443}
MBX_PORTS = {"smtp": 25, "client_proxy": 465, "imap": 1143, "imaps": 1993, "pop3": 1110, "pop3s": 1995, "http": 81, "https": 444}
ALICE, BOB = "alice@example.test", "bob@example.test"


def ports_of(server: str) -> dict[str, int]:
    return CAS_PORTS if ROLES[server] == ("client-access",) else MBX_PORTS


def _free(offset: int) -> bool:
    for server, host in HOSTS.items():
        for port in ports_of(server).values():
            with socket.socket() as s:
                try:
                    s.bind((host, port + offset))
                except OSError:
                    return False
    return True


def choose_offset() -> int:
    """0 (the seed's ports) as root when they are free, else an offset free on all three hosts."""
    if os.geteuid() == 0 and _free(0):
        return 0
    top = max(max(CAS_PORTS.values()), max(MBX_PORTS.values()))
    for attempt in range(200):
        offset = 10000 + (os.getpid() * 7919 + attempt * 104729) % (EPHEMERAL_START - top - 10000)
        if _free(offset):
            return offset
    raise RuntimeError("no port offset free on 127.0.0.10-12")


@dataclass
class Cluster:
    root: Path
    offset: int
    directory_url: str = ""
    database_urls: dict[str, str] = field(default_factory=dict)
    servers: dict[str, MailServer] = field(default_factory=dict)

    def port(self, server: str, name: str) -> int:
        return ports_of(server)[name] + self.offset

    def address(self, server: str, name: str) -> tuple[str, int]:
        return HOSTS[server], self.port(server, name)

    async def create(self) -> None:
        """The organization in PostgreSQL and the three server configs (nothing started)."""
        self.directory_url = await create_pg_database()
        for db in ("DB1", "DB2"):
            self.database_urls[db] = await create_pg_database()
        for name, host in HOSTS.items():
            setup = ServerSetup(
                config_path=self.root / name / "courriel.toml",
                server=name,
                fqdn=f"{name}.example.test",
                roles=ROLES[name],
                listen=(host,),
                port_offset=self.offset,
                directory_url=self.directory_url,
            )
            first = name == "cas1"
            await init_server(
                setup,
                organization="Courriel Topology" if first else None,
                domain="example.test" if first else None,
                join=not first,
            )
            wait_for = tuple((host, p + self.offset) for p in ports_of(name).values() if p in (25, 587, 465))
            self.servers[name] = MailServer(setup.config_path, self.offset, host=host, wait_for=wait_for)
        directory = await Directory.open(self.directory_url, self.root)
        try:
            await directory.new_database("DB1", self.database_urls["DB1"], "mbx1")
            await directory.new_database("DB2", self.database_urls["DB2"], "mbx2")
            await directory.new_mailbox(ALICE, "Alice", PASSWORD, "DB1")
            await directory.new_mailbox(BOB, "Bob", PASSWORD, "DB2")
            await directory.set_protocol_settings("imap", enabled=True)
            await directory.set_protocol_settings("pop", enabled=True)
        finally:
            await directory.close()

    def start(self) -> None:
        for server in self.servers.values():
            server.start()

    def stop(self) -> None:
        for server in self.servers.values():
            with contextlib.suppress(Exception):
                server.stop()

    async def destroy(self) -> None:
        self.stop()
        for url in (self.directory_url, *self.database_urls.values()):
            if url:
                await drop_pg_database(url)
