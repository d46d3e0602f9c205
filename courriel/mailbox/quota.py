"""Mailbox accounting: total size, message count, quota and the change counter, in one row.

The quota is checked by the same UPDATE that adds the new size (`… WHERE size + n <= quota`),
so concurrent deliveries cannot overshoot it and a refused message leaves nothing written. The
limit is Exchange's ProhibitSendReceiveQuota in bytes (RFC 9208 STORAGE counts KiB: the IMAP
engine converts). Deliveries carry the directory's current value and record it; APPEND and
COPY use the recorded value. Every write to a mailbox goes through `account` first, which also
makes it the first row a PostgreSQL transaction locks: one lock order, no deadlocks.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.mailbox.errors import NoSuchMailbox
from courriel.mailbox.schema import mailboxes

# A limit in bytes, None for no limit, or "stored": the value recorded for the mailbox.
QuotaLimit = int | None | Literal["stored"]


async def account(
    conn: AsyncConnection,
    guid: str,
    *,
    size: int = 0,
    messages: int = 0,
    limit: QuotaLimit = "stored",
    record: bool = False,
) -> bool:
    """Add to the mailbox's totals and bump its change counter; False if it is missing or over quota.

    With `record`, an explicit `limit` also becomes the mailbox's recorded quota.
    """
    values: dict[str, Any] = {"changes": mailboxes.c.changes + 1}
    if size:
        values["size"] = mailboxes.c.size + size
    if messages:
        values["messages"] = mailboxes.c.messages + messages
    if record and limit != "stored":
        values["quota"] = limit
    stmt = update(mailboxes).where(mailboxes.c.guid == guid)
    if size > 0:
        if limit == "stored":
            stmt = stmt.where(or_(mailboxes.c.quota.is_(None), mailboxes.c.size + size <= mailboxes.c.quota))
        elif limit is not None:
            stmt = stmt.where(mailboxes.c.size + size <= limit)
    row = (await conn.execute(stmt.values(values).returning(mailboxes.c.guid))).first()
    return row is not None


async def lock(conn: AsyncConnection, guid: str) -> None:
    """Bump the change counter, taking the mailbox row lock first; raises NoSuchMailbox."""
    if not await account(conn, guid):
        raise NoSuchMailbox("no such mailbox", f"mailbox {guid} is not in this database")


async def mailbox_exists(conn: AsyncConnection, guid: str) -> bool:
    row = (await conn.execute(select(mailboxes.c.guid).where(mailboxes.c.guid == guid))).first()
    return row is not None


async def usage(conn: AsyncConnection, guid: str) -> tuple[int, int] | None:
    """(bytes, messages) of a mailbox, or None if it is not in this database."""
    stmt = select(mailboxes.c.size, mailboxes.c.messages).where(mailboxes.c.guid == guid)
    row = (await conn.execute(stmt)).first()
    return None if row is None else (row.size, row.messages)


async def set_quota(conn: AsyncConnection, guid: str, quota: int | None) -> bool:
    stmt = update(mailboxes).where(mailboxes.c.guid == guid).values(quota=quota).returning(mailboxes.c.guid)
    return (await conn.execute(stmt)).first() is not None
