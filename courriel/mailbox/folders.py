"""The folder list of a mailbox: reading it, creating mailboxes, folders and their UIDVALIDITY.

Reads (list, get) serve IMAP LIST, LIST-STATUS and STATUS (RFC 9051 §6.3.9, §6.3.11, RFC 5819)
from counters kept in the folder rows. UIDVALIDITY comes from a per-mailbox counter that starts
from the clock and only grows, so a folder created again under an old name never gets an old
value back (RFC 9051 §2.3.1.1). Changes to the tree (delete, rename) are in tree.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.mailbox import quota
from courriel.mailbox.errors import FolderExists, NoSuchMailbox
from courriel.mailbox.model import FolderInfo
from courriel.mailbox.names import (
    DEFAULT_FOLDERS,
    SEPARATOR,
    canonical_special_use,
    is_special_use_selector,
    normalize_name,
    parent_names,
)
from courriel.mailbox.schema import dialect_insert, folders, mailboxes, subscriptions

_INFO_COLUMNS = (
    folders.c.id,
    folders.c.name,
    folders.c.special_use,
    folders.c.uidvalidity,
    folders.c.uidnext,
    folders.c.highestmodseq,
    folders.c.messages,
    folders.c.unseen,
    folders.c.deleted,
    folders.c.size,
    folders.c.noselect,
    folders.c.builtin,
    subscriptions.c.name.is_not(None).label("subscribed"),
)
_WITH_SUBSCRIPTION = folders.outerjoin(
    subscriptions, and_(subscriptions.c.mailbox == folders.c.mailbox, subscriptions.c.name == folders.c.name)
)


def _info(row: Any, has_children: bool) -> FolderInfo:
    return FolderInfo(
        id=row.id,
        name=row.name,
        special_use=row.special_use,
        uidvalidity=row.uidvalidity,
        uidnext=row.uidnext,
        highestmodseq=row.highestmodseq,
        subscribed=bool(row.subscribed),
        messages=row.messages,
        unseen=row.unseen,
        deleted=row.deleted,
        size=row.size,
        has_children=has_children,
        noselect=bool(row.noselect),
        builtin=bool(row.builtin),
    )


def children_of(guid: str, name: str) -> ColumnElement[bool]:
    """Folders below `name`. substr, not LIKE: SQLite's LIKE ignores ASCII case (pitfall 5)."""
    prefix = name + SEPARATOR
    return and_(folders.c.mailbox == guid, func.substr(folders.c.name, 1, len(prefix)) == prefix)


def list_folders(conn: Connection, guid: str) -> list[FolderInfo]:
    stmt = select(*_INFO_COLUMNS).select_from(_WITH_SUBSCRIPTION).where(folders.c.mailbox == guid)
    # Sorted here, not in SQL: PostgreSQL's collation would order names differently from SQLite.
    rows = sorted((conn.execute(stmt)).all(), key=lambda row: str(row.name))
    parents = {row.name.rsplit(SEPARATOR, 1)[0] for row in rows if SEPARATOR in row.name}
    return [_info(row, row.name in parents) for row in rows]


def _children() -> Any:
    child = folders.alias("child")
    prefix = folders.c.name + literal(SEPARATOR)
    return (
        exists()
        .where(
            child.c.mailbox == folders.c.mailbox, func.substr(child.c.name, 1, func.length(prefix)) == prefix
        )
        .label("has_children")
    )


# One statement for the folder and whether it has children (SELECT and STATUS are hot).
_INFO = select(*_INFO_COLUMNS, _children()).select_from(_WITH_SUBSCRIPTION)
# Built once with parameters: no SQL cache key to compute on each SELECT.
_INFO_BY_NAME = _INFO.where(folders.c.mailbox == bindparam("guid"), folders.c.name == bindparam("name"))


def _info_row(row: Any) -> FolderInfo | None:
    return None if row is None else _info(row, bool(row.has_children))


def folder_info(conn: Connection, where: ColumnElement[bool]) -> FolderInfo | None:
    return _info_row(conn.execute(_INFO.where(where)).first())


def folder_info_by_name(conn: Connection, guid: str, name: str) -> FolderInfo | None:
    """The folder by name (INBOX in any case); InvalidFolderName when the name cannot be one."""
    return _info_row(conn.execute(_INFO_BY_NAME, {"guid": guid, "name": normalize_name(name)}).first())


async def has_children(conn: AsyncConnection, guid: str, name: str) -> bool:
    stmt = select(literal(1)).where(children_of(guid, name)).limit(1)
    return (await conn.execute(stmt)).first() is not None


async def folder_exists(conn: AsyncConnection, guid: str, name: str) -> bool:
    stmt = select(literal(1)).where(folders.c.mailbox == guid, folders.c.name == name)
    return (await conn.execute(stmt)).first() is not None


def list_subscriptions(conn: Connection, guid: str) -> list[str]:
    stmt = select(subscriptions.c.name).where(subscriptions.c.mailbox == guid).order_by(subscriptions.c.name)
    return list((conn.execute(stmt)).scalars())


async def ensure_mailbox(conn: AsyncConnection, guid: str, owner: str, now: int) -> bool:
    """Create the mailbox and its default folders unless it exists; True if it was created."""
    stmt = (
        dialect_insert(conn, mailboxes)
        .values(guid=guid, owner=owner, created=now, size=0, messages=0, changes=0, last_uidvalidity=0)
        .on_conflict_do_nothing(index_elements=["guid"])
        .returning(mailboxes.c.guid)
    )
    if (await conn.execute(stmt)).first() is None:
        return False
    await _insert_folders(conn, guid, DEFAULT_FOLDERS, now, builtin=True)
    await conn.execute(
        insert(subscriptions), [{"mailbox": guid, "name": name} for name, _ in DEFAULT_FOLDERS]
    )
    return True


async def _next_uidvalidities(conn: AsyncConnection, guid: str, count: int, now: int) -> int:
    """Reserve `count` UIDVALIDITY values; returns the first. Clock-based, strictly increasing."""
    # RFC 3501 §2.3.1.1: a name whose UIDs did not persist MUST get a greater UIDVALIDITY than
    # before; one increasing counter per mailbox, started from the clock, guarantees it.
    # SQLite's two-argument max() is PostgreSQL's greatest().
    greatest = func.max if conn.dialect.name == "sqlite" else func.greatest
    stmt = (
        update(mailboxes)
        .where(mailboxes.c.guid == guid)
        .values(last_uidvalidity=greatest(mailboxes.c.last_uidvalidity + count, now))
        .returning(mailboxes.c.last_uidvalidity)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NoSuchMailbox("no such mailbox", f"mailbox {guid} is not in this database")
    return int(row[0]) - count + 1


async def _insert_folders(
    conn: AsyncConnection,
    guid: str,
    specs: Sequence[tuple[str, str | None]],
    now: int,
    *,
    builtin: bool = False,
) -> list[int]:
    first = await _next_uidvalidities(conn, guid, len(specs), now)
    rows = [
        {
            "mailbox": guid,
            "name": name,
            "special_use": special_use,
            "builtin": builtin,
            "noselect": False,
            "uidvalidity": first + offset,
            "uidnext": 1,
            "highestmodseq": 1,
            "messages": 0,
            "unseen": 0,
            "deleted": 0,
            "size": 0,
            "created": now,
        }
        for offset, (name, special_use) in enumerate(specs)
    ]
    ids: list[int] = []
    for row in rows:  # one by one: RETURNING with executemany is not portable
        ids.append((await conn.execute(insert(folders).values(row).returning(folders.c.id))).scalar_one())
    return ids


async def create_folder(
    conn: AsyncConnection, guid: str, name: str, special_use: str | None, now: int
) -> int:
    """CREATE (RFC 3501 §6.3.3), with missing parents; returns the folder id."""
    name = normalize_name(name, allow_trailing_separator=True)
    special_use = canonical_special_use(special_use)
    await quota.lock(conn, guid)
    wanted = [*parent_names(name), name]
    stmt = select(folders.c.id, folders.c.name, folders.c.noselect).where(
        folders.c.mailbox == guid, folders.c.name.in_(wanted)
    )
    existing = {row.name: row for row in (await conn.execute(stmt)).all()}
    target = existing.get(name)
    if target is not None:
        if not target.noselect:
            raise FolderExists("mailbox already exists")
        # A \Noselect placeholder becomes a real folder again, under a new UIDVALIDITY.
        uidvalidity = await _next_uidvalidities(conn, guid, 1, now)
        await conn.execute(
            update(folders)
            .where(folders.c.id == target.id)
            .values(noselect=False, uidvalidity=uidvalidity, special_use=special_use)
        )
        return int(target.id)
    missing: list[tuple[str, str | None]] = [(p, None) for p in wanted[:-1] if p not in existing]
    ids = await _insert_folders(conn, guid, [*missing, (name, special_use)], now)
    return ids[-1]


async def subscribe(conn: AsyncConnection, guid: str, name: str, on: bool) -> bool:
    """SUBSCRIBE/UNSUBSCRIBE (RFC 3501 §6.3.6-7); the name need not exist. True if it changed."""
    name = normalize_name(name)
    await quota.lock(conn, guid)
    if on:
        stmt = (
            dialect_insert(conn, subscriptions)
            .values(mailbox=guid, name=name)
            .on_conflict_do_nothing(index_elements=["mailbox", "name"])
            .returning(subscriptions.c.name)
        )
        return (await conn.execute(stmt)).first() is not None
    result = await conn.execute(
        subscriptions.delete()
        .where(subscriptions.c.mailbox == guid, subscriptions.c.name == name)
        .returning(subscriptions.c.name)
    )
    return result.first() is not None


def by_name(guid: str, name: str) -> ColumnElement[bool]:
    return and_(folders.c.mailbox == guid, folders.c.name == normalize_name(name))


def by_selector(guid: str, selector: str) -> ColumnElement[bool]:
    """Delivery's folder choice: a name, or the first folder with a special use (e.g. "\\Junk")."""
    if not is_special_use_selector(selector):
        return by_name(guid, selector)
    first = (
        select(func.min(folders.c.id))
        .where(folders.c.mailbox == guid, folders.c.special_use == canonical_special_use(selector))
        .scalar_subquery()
    )
    return folders.c.id == first
