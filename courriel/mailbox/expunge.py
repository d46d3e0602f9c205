"""Removing messages from a folder: EXPUNGE, UID EXPUNGE, the source half of MOVE, POP3 DELE.

Each removal takes one new MODSEQ and records every removed UID with it in the expunge history,
which is what QRESYNC's VANISHED (EARLIER) reports (RFC 7162 §3.2.5.2, §3.2.10). Folder and
mailbox counters shrink in the same transaction. Blob files are left alone: the bytes may still
be referenced by the transport queue, another folder or another database, so blob garbage
collection works from `digests_in_use` across all stores. Cached analysis rows whose digest no
message references any more are dropped here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.mailbox import quota
from courriel.mailbox.allocate import Delta, allocate, by_id
from courriel.mailbox.errors import NoSuchFolder
from courriel.mailbox.flags import DELETED
from courriel.mailbox.schema import analysis, expunged, folders, mailboxes, messages
from courriel.mailbox.uidset import chunks, uid_filter


@dataclass(frozen=True, slots=True)
class Removal:
    guid: str  # the mailbox
    folder_id: int
    uids: list[int]
    modseq: int | None  # None when nothing was removed
    size: int
    digests: frozenset[str]


async def lock_mailbox_of(conn: AsyncConnection, folder_id: int) -> str:
    """Bump the change counter of the folder's mailbox (taking its row lock first) and return its GUID."""
    owner = select(folders.c.mailbox).where(folders.c.id == folder_id).scalar_subquery()
    stmt = (
        update(mailboxes)
        .where(mailboxes.c.guid == owner)
        .values(changes=mailboxes.c.changes + 1)
        .returning(mailboxes.c.guid)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NoSuchFolder("no such mailbox", f"folder id {folder_id} does not exist")
    return str(row[0])


async def select_rows(
    conn: AsyncConnection, folder_id: int, uids: Sequence[int] | None, *, only_deleted: bool, for_update: bool
) -> list[Any]:
    """The rows (uid, flags, keywords, internaldate, size, digest) of the given UIDs, in UID order."""
    stmt = select(
        messages.c.uid,
        messages.c.flags,
        messages.c.keywords,
        messages.c.internaldate,
        messages.c.size,
        messages.c.digest,
    ).where(messages.c.folder_id == folder_id)
    if only_deleted:
        stmt = stmt.where(messages.c.flags.op("&")(DELETED) != 0)
    exact: frozenset[int] | None = None
    if uids is not None:
        condition, exact = uid_filter(messages.c.uid, uids)
        stmt = stmt.where(condition)
    if for_update:
        stmt = stmt.with_for_update()  # PostgreSQL row locks; SQLite's writer already holds the lock
    rows = list((await conn.execute(stmt.order_by(messages.c.uid))).all())
    return rows if exact is None else [row for row in rows if row.uid in exact]


async def remove_rows(
    conn: AsyncConnection, guid: str, folder_id: int, rows: Sequence[Any], *, refund: bool = True
) -> Removal:
    """Delete these rows of the folder and record them as expunged under one new MODSEQ."""
    if not rows:
        return Removal(guid, folder_id, [], None, 0, frozenset())
    delta = Delta()
    for row in rows:
        delta.count(row.flags, row.size, -1)
    allocation = await allocate(conn, by_id(folder_id), modseqs=1, delta=delta)
    if allocation is None:
        raise NoSuchFolder("no such mailbox", f"folder id {folder_id} vanished")
    uids = [row.uid for row in rows]
    for part in chunks(uids):
        await conn.execute(
            delete(messages).where(messages.c.folder_id == folder_id, messages.c.uid.in_(part))
        )
    modseq = allocation.highestmodseq
    await conn.execute(
        insert(expunged), [{"folder_id": folder_id, "uid": uid, "modseq": modseq} for uid in uids]
    )
    if refund:
        await quota.account(conn, guid, size=delta.size, messages=delta.messages)
    digests = frozenset(row.digest for row in rows)
    await forget_unreferenced(conn, digests)
    return Removal(guid, folder_id, uids, modseq, -delta.size, digests)


async def expunge(
    conn: AsyncConnection, folder_id: int, uids: Sequence[int] | None, *, only_deleted: bool = True
) -> Removal:
    """EXPUNGE / UID EXPUNGE (RFC 9051 §6.4.3, RFC 4315 §2.1): messages flagged \\Deleted, within `uids`."""
    guid = await lock_mailbox_of(conn, folder_id)
    rows = await select_rows(conn, folder_id, uids, only_deleted=only_deleted, for_update=True)
    return await remove_rows(conn, guid, folder_id, rows)


async def forget_unreferenced(conn: AsyncConnection, digests: frozenset[str]) -> None:
    """Drop cached analysis for digests that no message of this database references any more."""
    unreferenced = ~exists().where(messages.c.digest == analysis.c.digest)
    for part in chunks(sorted(digests)):
        await conn.execute(delete(analysis).where(analysis.c.digest.in_(part), unreferenced))
