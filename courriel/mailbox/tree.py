"""Changing the folder tree: DELETE (RFC 3501 §6.3.4) and RENAME (RFC 3501 §6.3.5).

Default folders (Exchange's Inbox, Sent Items, Drafts, Deleted Items, Junk Email, Outbox) cannot
be deleted or renamed, as in Exchange, except the RENAME of INBOX that RFC 3501 defines. A folder
deleted while it has children stays as a \\Noselect placeholder; placeholders left without
children are removed, so the tree never keeps names nobody can see or use.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.mailbox import quota
from courriel.mailbox.allocate import Delta, allocate, by_id
from courriel.mailbox.errors import FolderExists, FolderRefused, NoSuchFolder
from courriel.mailbox.expunge import forget_unreferenced
from courriel.mailbox.folders import children_of, create_folder, folder_exists, has_children
from courriel.mailbox.names import INBOX, is_within, normalize_name, parent_names
from courriel.mailbox.schema import dialect_insert, expunged, folders, messages, subscriptions


async def _folder(conn: AsyncConnection, guid: str, name: str) -> Any:
    stmt = select(folders).where(folders.c.mailbox == guid, folders.c.name == name).with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NoSuchFolder("mailbox does not exist", f"folder {name!r} not in mailbox {guid}")
    return row


async def delete_folder(conn: AsyncConnection, guid: str, name: str) -> int:
    """DELETE; returns the id of the folder whose messages are gone."""
    name = normalize_name(name)
    if name == INBOX:
        raise FolderRefused("INBOX cannot be deleted")  # RFC 3501 §6.3.4
    await quota.lock(conn, guid)
    row = await _folder(conn, guid, name)
    if row.builtin:
        raise FolderRefused("a default folder cannot be deleted")
    folder_id: int = row.id
    inferiors = await has_children(conn, guid, name)
    if inferiors and row.noselect:
        # RFC 3501 §6.3.4: a \Noselect name with inferior names cannot be deleted.
        raise FolderRefused("mailbox has children and holds no messages")
    digests = frozenset(
        (
            await conn.execute(
                delete(messages).where(messages.c.folder_id == folder_id).returning(messages.c.digest)
            )
        )
        .scalars()
        .all()
    )
    await quota.account(conn, guid, size=-row.size, messages=-row.messages)
    await conn.execute(delete(expunged).where(expunged.c.folder_id == folder_id))
    if inferiors:
        # RFC 3501 §6.3.4: the messages go, the children stay, the name becomes \Noselect.
        await conn.execute(
            update(folders)
            .where(folders.c.id == folder_id)
            .values(
                noselect=True,
                messages=0,
                unseen=0,
                deleted=0,
                size=0,
                highestmodseq=folders.c.highestmodseq + 1,
            )
        )
    else:
        await conn.execute(delete(folders).where(folders.c.id == folder_id))
        await _prune_placeholders(conn, guid, name)
    await forget_unreferenced(conn, digests)
    return folder_id


async def rename_folder(conn: AsyncConnection, guid: str, old: str, new: str, now: int) -> int:
    """RENAME; returns the id of the folder now called `new`."""
    old, new = normalize_name(old), normalize_name(new, allow_trailing_separator=True)
    await quota.lock(conn, guid)
    row = await _folder(conn, guid, old)
    if await folder_exists(conn, guid, new):
        raise FolderExists("target mailbox already exists")  # RFC 3501 §6.3.5
    if old == INBOX:
        return await _rename_inbox(conn, guid, row, new, now)
    if row.builtin:
        raise FolderRefused("a default folder cannot be renamed")
    if is_within(new, old):
        raise FolderRefused("a mailbox cannot be moved below itself")
    parents = parent_names(new)
    if parents and not await folder_exists(conn, guid, parents[-1]):
        # RFC 3501 §6.3.5: create the missing superior names (create_folder makes every missing level).
        await create_folder(conn, guid, parents[-1], None, now)
    moved = (await conn.execute(select(folders.c.id, folders.c.name).where(children_of(guid, old)))).all()
    renames = [(row.id, new)] + [(child.id, new + child.name[len(old) :]) for child in moved]
    for folder_id, name in renames:
        await conn.execute(update(folders).where(folders.c.id == folder_id).values(name=name))
    await _move_subscriptions(conn, guid, old, new, [old] + [child.name for child in moved])
    await _prune_placeholders(conn, guid, old)
    return int(row.id)


async def _rename_inbox(conn: AsyncConnection, guid: str, inbox: Any, new: str, now: int) -> int:
    """RFC 3501 §6.3.5: all of INBOX's messages move to a new folder; INBOX stays, empty, children unmoved."""
    target = await create_folder(conn, guid, new, None, now)
    inbox_id: int = inbox.id
    held = Delta(inbox.messages, inbox.unseen, inbox.deleted, inbox.size)
    emptied = Delta(-held.messages, -held.unseen, -held.deleted, -held.size)
    # The messages keep their UIDs and MODSEQs: the new folder has its own UIDVALIDITY.
    moved = await allocate(conn, by_id(inbox_id), modseqs=1, delta=emptied)
    assert moved is not None  # INBOX always exists and is selectable
    await conn.execute(
        insert(expunged).from_select(
            ["folder_id", "uid", "modseq"],
            select(messages.c.folder_id, messages.c.uid, literal(moved.highestmodseq)).where(
                messages.c.folder_id == inbox_id
            ),
        )
    )
    await conn.execute(update(messages).where(messages.c.folder_id == inbox_id).values(folder_id=target))
    await conn.execute(
        update(folders)
        .where(folders.c.id == target)
        .values(
            uidnext=moved.uidnext,
            highestmodseq=moved.highestmodseq,
            messages=held.messages,
            unseen=held.unseen,
            deleted=held.deleted,
            size=held.size,
        )
    )
    return target


async def _move_subscriptions(conn: AsyncConnection, guid: str, old: str, new: str, names: list[str]) -> None:
    """Subscriptions follow the folders they name (as Dovecot does); a target already subscribed stays so."""
    mine = subscriptions.c.mailbox == guid
    subscribed = (
        (await conn.execute(select(subscriptions.c.name).where(mine, subscriptions.c.name.in_(names))))
        .scalars()
        .all()
    )
    if not subscribed:
        return
    await conn.execute(delete(subscriptions).where(mine, subscriptions.c.name.in_(subscribed)))
    await conn.execute(
        dialect_insert(conn, subscriptions).on_conflict_do_nothing(index_elements=["mailbox", "name"]),
        [{"mailbox": guid, "name": new + name[len(old) :]} for name in subscribed],
    )


async def _prune_placeholders(conn: AsyncConnection, guid: str, name: str) -> None:
    """Remove \\Noselect ancestors of `name` that no longer have children, deepest first."""
    for parent in reversed(parent_names(name)):
        stmt = select(folders.c.id, folders.c.noselect).where(
            folders.c.mailbox == guid, folders.c.name == parent
        )
        row = (await conn.execute(stmt)).first()
        if row is None or not row.noselect or await has_children(conn, guid, parent):
            return
        await conn.execute(delete(expunged).where(expunged.c.folder_id == row.id))
        await conn.execute(delete(folders).where(folders.c.id == row.id))
