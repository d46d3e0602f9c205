"""The SQL schema of a mailbox database (one per SQLite file or PostgreSQL database).

IMAP state is first-class (DESIGN.md §3): each folder carries UIDVALIDITY, UIDNEXT and
HIGHESTMODSEQ (RFC 9051 §2.3.1.1, RFC 7162 §3.1); each message its UID, MODSEQ, flags and the
digest of its bytes in the blob store (never the bytes: both drivers load whole BLOBs into
memory, python-ecosystem.md §6). Choices:
- Counters (sizes, message/unseen/deleted counts, the per-mailbox change counter) are kept in
  the rows and changed in the same transaction as the messages, so STATUS, quota and IDLE
  polling cost one indexed read.
- Keywords are one space-separated text column, not a side table: a folder snapshot (the
  IMAP hot read) is then one scan of one table, a STORE is one row update, and COPY copies a
  row. Keyword SEARCH is rare and stays cheap enough as a LIKE over one folder's rows.
- Analysis results (envelope, body structure, searchable text, header block) depend only on
  the bytes, so they are keyed by blob digest: copies and moves share them and each message is
  parsed once, when it is stored (analysis.py).
- Delivery keys live in their own table so that exactly-once delivery survives a MOVE or an
  expunge of the first copy.
- Subscriptions are names, not folder columns: RFC 3501 §6.3.6 forbids dropping a subscription
  when its folder goes away.
- Times are integer Unix seconds (UTC): same type and comparisons on both engines.
Table names carry `mbx_` so a PostgreSQL database can also host other components' tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    literal_column,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.storage.migrations import Step, create_tables

COMPONENT = "mailbox"
# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (autoincrementing).
_ID = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

mailboxes = Table(
    "mbx_mailboxes",
    metadata,
    Column("guid", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False, default=0),
    Column("messages", BigInteger, nullable=False, default=0),
    Column("quota", BigInteger, nullable=True),  # bytes; the last value the directory gave
    Column("changes", BigInteger, nullable=False, default=0),  # bumped by every write, polled by IDLE
    Column("last_uidvalidity", BigInteger, nullable=False, default=0),
)

folders = Table(
    "mbx_folders",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("mailbox", Text, ForeignKey("mbx_mailboxes.guid", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),  # full name, "/" separated, Unicode
    Column("special_use", Text, nullable=True),  # RFC 6154 attribute, e.g. "\\Sent"
    Column("builtin", Boolean, nullable=False, default=False),  # a default folder (not deletable)
    Column("noselect", Boolean, nullable=False, default=False),  # RFC 3501 §6.3.4 placeholder
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False, default=1),
    Column("highestmodseq", BigInteger, nullable=False, default=1),
    Column("messages", BigInteger, nullable=False, default=0),
    Column("unseen", BigInteger, nullable=False, default=0),
    Column("deleted", BigInteger, nullable=False, default=0),
    Column("size", BigInteger, nullable=False, default=0),
    Column("created", BigInteger, nullable=False),
    UniqueConstraint("mailbox", "name", name="mbx_folders_name"),
    Index("mbx_folders_special_use", "mailbox", "special_use"),
    # Ids are never reused (SQLite would reuse the highest deleted rowid): an IMAP session that
    # still holds the id of a deleted folder must not reach a new folder with it.
    sqlite_autoincrement=True,
)

messages = Table(
    "mbx_messages",
    metadata,
    Column("folder_id", _ID, ForeignKey("mbx_folders.id", ondelete="CASCADE"), nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("modseq", BigInteger, nullable=False),
    Column("flags", Integer, nullable=False, default=0),
    Column("keywords", Text, nullable=False, default=""),
    Column("internaldate", BigInteger, nullable=False),
    Column("saved", BigInteger, nullable=False),  # RFC 8514 SAVEDATE
    Column("size", BigInteger, nullable=False),
    Column("digest", Text, nullable=False),
    PrimaryKeyConstraint("folder_id", "uid", name="mbx_messages_pk"),
    Index("mbx_messages_modseq", "folder_id", "modseq"),
    Index("mbx_messages_digest", "digest"),
    # Most messages carry no keyword: a snapshot reads keywords from this small partial index.
    # Covering, so that SQLite picks it even before any ANALYZE; the query must repeat the
    # condition literally (HAS_KEYWORDS), not as a bound parameter, for the index to apply.
    Index(
        "mbx_messages_keywords",
        "folder_id",
        "uid",
        "keywords",
        sqlite_where=text("keywords != ''"),
        postgresql_where=text("keywords != ''"),
    ),
    # Clustered by (folder, uid) on SQLite: a snapshot is one range scan with no row lookups.
    sqlite_with_rowid=False,
)

expunged = Table(
    "mbx_expunged",
    metadata,
    Column("folder_id", _ID, ForeignKey("mbx_folders.id", ondelete="CASCADE"), nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("modseq", BigInteger, nullable=False),
    PrimaryKeyConstraint("folder_id", "uid", name="mbx_expunged_pk"),
    Index("mbx_expunged_modseq", "folder_id", "modseq"),
    sqlite_with_rowid=False,
)

deliveries = Table(
    "mbx_deliveries",
    metadata,
    Column("mailbox", Text, nullable=False),
    Column("delivery_key", Text, nullable=False),
    Column("delivered", BigInteger, nullable=False),
    PrimaryKeyConstraint("mailbox", "delivery_key", name="mbx_deliveries_pk"),
    Index("mbx_deliveries_delivered", "delivered"),
)

subscriptions = Table(
    "mbx_subscriptions",
    metadata,
    Column("mailbox", Text, ForeignKey("mbx_mailboxes.guid", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    PrimaryKeyConstraint("mailbox", "name", name="mbx_subscriptions_pk"),
)

analysis = Table(
    "mbx_analysis",
    metadata,
    Column("digest", Text, primary_key=True),
    Column("envelope", Text, nullable=True),
    Column("bodystructure", Text, nullable=True),
    Column("headers", Text, nullable=True),
    Column("text", Text, nullable=True),
    Column("updated", BigInteger, nullable=False),
    # Step 2: the raw header block (Latin-1, as the wire forms above), so that a message list's
    # BODY.PEEK[HEADER.FIELDS (…)] is answered without reading the message file.
    Column("header", Text, nullable=True),
)

HAS_KEYWORDS = messages.c.keywords != literal_column("''")


async def _add_header(conn: AsyncConnection) -> None:
    """Step 2. A database made by step 1 with today's metadata has the column already; rows made
    before it get their header block when the IMAP engine next needs it (or never: then FETCH
    reads the message file, as before). On PostgreSQL the searchable text is also kept out of
    line uncompressed (STORAGE EXTERNAL, for rows written from now on): SEARCH TEXT scans it
    all, and decompressing it cost a third of that scan on a 10,000-message folder."""

    def run(sync: Connection) -> None:
        if "header" not in {c["name"] for c in inspect(sync).get_columns("mbx_analysis")}:
            sync.execute(text("ALTER TABLE mbx_analysis ADD COLUMN header TEXT"))
        if sync.dialect.name == "postgresql":
            sync.execute(text("ALTER TABLE mbx_analysis ALTER COLUMN text SET STORAGE EXTERNAL"))

    await conn.run_sync(run)


STEPS: list[Step] = [create_tables(metadata), _add_header]


def dialect_insert(conn: AsyncConnection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that supports ON CONFLICT on either engine (python-ecosystem.md §6, pitfall 5)."""
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    return postgresql.insert(table)
