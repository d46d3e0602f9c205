"""The organization directory (the seed's Active Directory): one SQL database shared by every server.

`Directory` joins the store's parts — organization settings, accepted domains, recipients,
topology, connectors and the organization CA — over one engine; SQLite for a single server, PostgreSQL for an
organization of several. It is the write path (the `courriel` command, the admin API, setup);
servers read through org/cache.py, which keeps a snapshot in memory and follows the version.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from sqlalchemy import select

from courriel.org import schema as t
from courriel.org.certificates import CertificateOps
from courriel.org.codec import build
from courriel.org.connectors import ConnectorOps, load_receive_connectors, load_send_connectors
from courriel.org.domains import DomainOps, load_domains
from courriel.org.groups import GroupOps
from courriel.org.model import ProtocolSettings, TransportConfig
from courriel.org.organization import ORGANIZATION, PROTOCOLS, TRANSPORT_CONFIG, OrganizationOps, read_setting
from courriel.org.recipients import RecipientOps, load_recipients
from courriel.org.snapshot import DirectorySnapshot
from courriel.org.store import load_databases, load_servers
from courriel.org.topology import TopologyOps
from courriel.storage.engine import dispose, open_engine, open_reader
from courriel.storage.migrations import migrate


class Directory(OrganizationOps, DomainOps, RecipientOps, GroupOps, TopologyOps, ConnectorOps, CertificateOps):
    """Async CRUD over the directory; every method returns model objects (org/model.py)."""

    @classmethod
    async def open(cls, url: str, base_dir: Path | None = None) -> Directory:
        """Connect and bring the schema up to date (migrations are idempotent)."""
        engine = open_engine(url, base_dir)
        try:
            await migrate(engine, t.COMPONENT, t.MIGRATIONS)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, url, open_reader(engine, url, base_dir))

    async def close(self) -> None:
        await dispose(self._engine, self._reader)

    async def __aenter__(self) -> Directory:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def snapshot(self) -> DirectorySnapshot:
        """Everything, read in one transaction so that the snapshot is one version of the directory."""
        async with self._read() as conn:  # one snapshot: a commit cannot land between the reads below
            version = int((await conn.execute(select(t.directory_version.c.version))).scalar_one())
            organization = await read_setting(conn, ORGANIZATION)
            memberships = (await conn.execute(select(t.group_members))).all()
            return DirectorySnapshot.build(
                version=version,
                organization=None if organization is None else str(organization["name"]),
                transport_config=build(
                    TransportConfig, await read_setting(conn, TRANSPORT_CONFIG) or {}, "transport config"
                ),
                imap_settings=build(
                    ProtocolSettings, await read_setting(conn, PROTOCOLS["imap"]) or {}, "imap settings"
                ),
                pop_settings=build(
                    ProtocolSettings, await read_setting(conn, PROTOCOLS["pop"]) or {}, "pop settings"
                ),
                domains=await load_domains(conn),
                recipients=await load_recipients(conn),
                memberships=[(int(m.group_id), int(m.member_id)) for m in memberships],
                receive_connectors=[c for _, c in await load_receive_connectors(conn)],
                send_connectors=[c for _, c in await load_send_connectors(conn)],
                databases=await load_databases(conn),
                servers=await load_servers(conn),
            )
