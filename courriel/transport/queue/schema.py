"""Queue tables (one SQLite file per transport server, like Exchange's mail.que).

A message row holds the envelope; recipient rows hold the categorizer's result: one row per
resolved recipient with its next hop and its delivery state. Each recipient's result is durable,
so a restart neither loses a recipient nor delivers to one twice (research §8: "queues").
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    inspect,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.storage.migrations import create_tables

metadata = MetaData()

messages = Table(
    "q_messages",
    metadata,
    Column("id", String(32), primary_key=True),  # ULID: sorts by arrival
    Column("digest", String(64), nullable=False),  # blob holding the bytes (Received header included)
    Column("size", BigInteger, nullable=False),
    Column("sender", Text, nullable=False),  # "" is the null sender <>
    Column("envelope", JSON, nullable=False),  # MAIL params and the envelope recipients as received
    Column("received_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("source", String(32), nullable=False),  # SMTP, DSN, ADMIN …
    Column("connector", Text),
    Column("client_ip", String(64)),
    Column("client_helo", Text),
    Column("auth_user", Text),
    Column("message_id", Text),  # the Message-ID header
    Column("subject", Text),
)

recipients = Table(
    "q_recipients",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("message", String(32), ForeignKey("q_messages.id", ondelete="CASCADE"), nullable=False),
    Column("address", Text, nullable=False),  # the resolved recipient (primary address or external)
    Column("original", Text, nullable=False),  # the envelope recipient it came from
    Column("orcpt", Text),  # RFC 3461 ORCPT, "type;value"
    Column("notify", String(64)),  # RFC 3461 NOTIFY, comma separated
    Column("next_hop", Text, nullable=False),  # "mailbox:DB01", "smtp:<connector>:<domain>", "unreachable:<domain>"
    Column("delivery_type", String(48), nullable=False),
    Column("target", Text),  # the mailbox GUID for local delivery
    Column("status", String(16), nullable=False),  # ready, retry, suspended, delivered, relayed, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt", Float, nullable=False, default=0.0),
    Column("last_error", Text),
    Column("updated_at", Float, nullable=False),
    # Added by migration step 2: the one delay DSN (DelayNotificationTimeout) has gone out.
    Column("delay_notified", Boolean, nullable=False, default=False, server_default=false()),
    Index("q_recipients_due", "status", "next_attempt"),
    Index("q_recipients_message", "message"),
)



async def _add_delay_notified(conn: AsyncConnection) -> None:
    """Step 2. A database made by step 1 with today's metadata has the column already."""

    def run(sync: Connection) -> None:
        if "delay_notified" not in {c["name"] for c in inspect(sync).get_columns("q_recipients")}:
            sync.execute(text("ALTER TABLE q_recipients ADD COLUMN delay_notified BOOLEAN NOT NULL DEFAULT 0"))

    await conn.run_sync(run)


MIGRATIONS = [create_tables(metadata), _add_delay_notified]

ACTIVE = ("ready", "retry", "suspended")
FINAL = ("delivered", "relayed", "failed")
