"""INBOX seen as a POP3 maildrop (RFC 1939): the listing, UIDL keys, and deletion at QUIT.

A UIDL unique-id must stay the same for a message across sessions (RFC 1939 §7); ours is
"<INBOX UIDVALIDITY>.<UID>", which never changes while INBOX lives and never names another
message. Deletion in the UPDATE state removes the messages whatever their \\Deleted flag, with
the usual expunge record, so an IMAP client of the same mailbox sees them vanish.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.mailbox.errors import NoSuchFolder
from courriel.mailbox.expunge import Removal, expunge
from courriel.mailbox.model import MaildropEntry
from courriel.mailbox.names import INBOX
from courriel.mailbox.schema import folders, messages


def pop_key(uidvalidity: int, uid: int) -> str:
    """A UIDL unique-id: 1 to 70 characters in 0x21-0x7E (RFC 1939 §7)."""
    return f"{uidvalidity}.{uid}"


def parse_pop_key(key: str) -> tuple[int, int]:
    """(uidvalidity, uid) of a key; (0, 0), which matches no message, if the key is not ours."""
    validity, _, uid = key.partition(".")
    if not (validity.isdigit() and uid.isdigit()):
        return (0, 0)
    return int(validity), int(uid)


async def _inbox(conn: AsyncConnection, guid: str) -> Any:
    stmt = select(folders.c.id, folders.c.uidvalidity).where(
        folders.c.mailbox == guid, folders.c.name == INBOX
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NoSuchFolder("mailbox does not exist", f"mailbox {guid} has no INBOX")
    return row


async def maildrop(conn: AsyncConnection, guid: str) -> list[MaildropEntry]:
    """The maildrop listing, oldest first (message n is the n-th entry)."""
    inbox = await _inbox(conn, guid)
    stmt = select(messages.c.uid, messages.c.size, messages.c.digest).where(messages.c.folder_id == inbox.id)
    rows = (await conn.execute(stmt.order_by(messages.c.uid))).all()
    return [MaildropEntry(pop_key(inbox.uidvalidity, r.uid), r.size, r.digest) for r in rows]


async def delete(conn: AsyncConnection, guid: str, keys: Sequence[str]) -> Removal:
    """Remove the messages marked with DELE (RFC 1939 §6)."""
    inbox = await _inbox(conn, guid)
    uids = [uid for validity, uid in map(parse_pop_key, keys) if validity == inbox.uidvalidity]
    return await expunge(conn, inbox.id, uids, only_deleted=False)
