"""The organization directory's tables (the seed's Active Directory, in SQL) and their migrations.

One schema for SQLite (a single server) and PostgreSQL (shared by every server of a larger
organization). Connector parameters are JSON documents validated through the model's dataclasses,
so a new parameter needs no migration. `directory_version` holds one row that every write
transaction bumps first: it serializes writers (a row lock on PostgreSQL, `BEGIN IMMEDIATE` on
SQLite) and tells the caches of every process that they must reload.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.storage.migrations import Step, add_table, create_tables

COMPONENT = "directory"

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

settings = Table(
    "org_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
)

directory_version = Table(
    "directory_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
)

sites = Table(
    "sites",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("name_key", String(64), nullable=False, unique=True),
)

servers = Table(
    "servers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("name_key", String(64), nullable=False, unique=True),
    Column("fqdn", String(255), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("site_id", Id, ForeignKey("sites.id"), nullable=False),
    Column("addresses", JSON, nullable=False),
    Column("port_offset", Integer, nullable=False, default=0),
)

accepted_domains = Table(
    "accepted_domains",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),  # stored lower-case
    Column("domain_type", String(32), nullable=False),
    Column("is_default", Boolean, nullable=False, default=False),
)

mailbox_databases = Table(
    "mailbox_databases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("name_key", String(64), nullable=False, unique=True),
    Column("url", String(1024), nullable=False),
    # The server the database lives on; kept while dismounted so that `mount` knows where.
    Column("server_id", Id, ForeignKey("servers.id"), nullable=False),
    Column("mounted", Boolean, nullable=False, default=True),
    Column("issue_warning_quota", BigInteger, nullable=True),
    Column("prohibit_send_quota", BigInteger, nullable=True),
    Column("prohibit_send_receive_quota", BigInteger, nullable=True),
)

recipients = Table(
    "recipients",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("guid", String(32), nullable=True, unique=True),
    Column("database_id", Id, ForeignKey("mailbox_databases.id"), nullable=True),
    Column("password_hash", String(512), nullable=True),
    Column("external_address", String(320), nullable=True),
    Column("imap_enabled", Boolean, nullable=False, default=True),
    Column("pop_enabled", Boolean, nullable=False, default=True),
    Column("issue_warning_quota", BigInteger, nullable=True),
    Column("prohibit_send_quota", BigInteger, nullable=True),
    Column("prohibit_send_receive_quota", BigInteger, nullable=True),
    Column("max_send_size", BigInteger, nullable=True),
    Column("max_receive_size", BigInteger, nullable=True),
    Column("hidden", Boolean, nullable=False, default=False),
)

proxy_addresses = Table(
    "proxy_addresses",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("recipient_id", Id, ForeignKey("recipients.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("address", String(320), nullable=False),  # as entered
    Column("domain", String(255), nullable=False, index=True),  # lower-case, for accepted-domain checks
    # lower(local)@lower(domain): Exchange resolves proxy addresses case-insensitively.
    Column("address_key", String(320), nullable=False, unique=True),
    Column("is_primary", Boolean, nullable=False, default=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", Id, ForeignKey("recipients.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", Id, ForeignKey("recipients.id", ondelete="CASCADE"), primary_key=True, index=True),
)

receive_connectors = Table(
    "receive_connectors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("server_id", Id, ForeignKey("servers.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("name_key", String(128), nullable=False),
    Column("params", JSON, nullable=False),
    UniqueConstraint("server_id", "name_key"),
)

send_connectors = Table(
    "send_connectors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("name_key", String(128), nullable=False, unique=True),
    Column("params", JSON, nullable=False),
)

# The organization's certificate authority (org/certificates.py): one row, made once. The key
# sits with the rest of the directory: whoever can write the directory governs the organization.
certificate_authority = Table(
    "org_certificate_authority",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("certificate", Text, nullable=False),
    Column("private_key", Text, nullable=False),
    Column("created", Float, nullable=False),
)

# When each mailbox was last sent its IssueWarningQuota message (org/quota_warnings.py): shared by
# every worker and Mailbox server, so a mailbox is warned at most once a day. Not a directory
# object: writing it does not bump `directory_version`.
quota_warnings = Table(
    "quota_warnings",
    metadata,
    Column("guid", String(32), primary_key=True),
    Column("warned_at", Float, nullable=False),
)


async def _seed_version_row(conn: AsyncConnection) -> None:
    await conn.execute(directory_version.insert().values(id=1, version=0))


def _initial(create: Step) -> Step:
    async def step(conn: AsyncConnection) -> None:
        await create(conn)
        await _seed_version_row(conn)

    return step


MIGRATIONS: list[Step] = [
    _initial(create_tables(metadata)),
    add_table(certificate_authority),
    add_table(quota_warnings),
]
