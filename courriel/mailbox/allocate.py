"""UID and MODSEQ allocation: one atomic `UPDATE folders … RETURNING` per folder per change.

A read-then-write allocation produced duplicate UIDs on both engines (python-ecosystem.md §6), so
UIDs and MODSEQs only ever come from an UPDATE that adds n to UIDNEXT / HIGHESTMODSEQ and returns
the new values; the same statement adjusts the folder's counters. UIDs are never reused, since
UIDNEXT never goes down (RFC 9051 §2.3.1.1); every change to a message (new, flags, expunge)
takes a MODSEQ above the folder's HIGHESTMODSEQ (RFC 7162 §3.1.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, update
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.mailbox.flags import DELETED, SEEN
from courriel.mailbox.schema import folders


@dataclass(slots=True)
class Delta:
    """Changes to a folder's (or a mailbox's) message counters."""

    messages: int = 0
    unseen: int = 0
    deleted: int = 0
    size: int = 0

    def count(self, flags: int, size: int, sign: int = 1) -> None:
        """Count one message with these flags in (sign=1) or out (sign=-1)."""
        self.messages += sign
        self.size += sign * size
        if not flags & SEEN:
            self.unseen += sign
        if flags & DELETED:
            self.deleted += sign

    def reflag(self, old: int, new: int) -> None:
        """Count a flag change of one message that stays in the folder."""
        self.unseen += bool(old & SEEN) - bool(new & SEEN)
        self.deleted += bool(new & DELETED) - bool(old & DELETED)


@dataclass(frozen=True, slots=True)
class Allocation:
    folder_id: int
    mailbox: str
    uidvalidity: int
    first_uid: int  # the first of the UIDs asked for
    first_modseq: int  # the first of the MODSEQs asked for
    highestmodseq: int
    uidnext: int


def by_id(folder_id: int) -> ColumnElement[bool]:
    return folders.c.id == folder_id


async def allocate(
    conn: AsyncConnection,
    where: ColumnElement[bool],
    *,
    uids: int = 0,
    modseqs: int = 0,
    delta: Delta | None = None,
) -> Allocation | None:
    """Take `uids` UIDs and `modseqs` MODSEQs from the selectable folder matching `where`.

    Returns None when no such folder exists (or it is a \\Noselect placeholder).
    """
    values: dict[str, Any] = {}
    if uids:
        # RFC 3501 §2.3.1.1: UIDs MUST be strictly ascending and never reused; UIDNEXT only grows.
        values["uidnext"] = folders.c.uidnext + uids
    if modseqs:
        values["highestmodseq"] = folders.c.highestmodseq + modseqs
    if delta is not None:
        for column in ("messages", "unseen", "deleted", "size"):
            change = getattr(delta, column)
            if change:
                values[column] = folders.c[column] + change
    if not values:
        values["highestmodseq"] = folders.c.highestmodseq  # still lock and return the row
    stmt = (
        update(folders)
        .where(where, folders.c.noselect == false())
        .values(values)
        .returning(
            folders.c.id, folders.c.mailbox, folders.c.uidvalidity, folders.c.uidnext, folders.c.highestmodseq
        )
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return Allocation(
        folder_id=row.id,
        mailbox=row.mailbox,
        uidvalidity=row.uidvalidity,
        first_uid=row.uidnext - uids,
        first_modseq=row.highestmodseq - modseqs + 1,
        highestmodseq=row.highestmodseq,
        uidnext=row.uidnext,
    )
