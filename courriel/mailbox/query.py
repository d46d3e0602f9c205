"""Reading messages: folder snapshots, changes since a MODSEQ, FETCH metadata, SEARCH.

These run on the read pool (database.py), each in one short transaction on a consistent snapshot.
A snapshot is one range scan of the (folder_id, uid) key whose numbers come back aggregated into
three strings, plus the few rows that carry keywords: SELECT of a 10,000-message folder then
takes a few milliseconds. `changes_since` reads the rows
and expunge records above a MODSEQ: IDLE and NOOP updates, CHANGEDSINCE (RFC 7162 §3.1.4) and
QRESYNC's VANISHED (EARLIER) (RFC 7162 §3.2.5.2).
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.mailbox import criteria
from courriel.mailbox.errors import NoSuchFolder
from courriel.mailbox.flags import Keywords, split_keywords
from courriel.mailbox.model import Changes, FlagUpdate, FolderSnapshot, MessageMeta, from_epoch
from courriel.mailbox.schema import HAS_KEYWORDS, analysis, expunged, folders, mailboxes, messages
from courriel.mailbox.uidset import uid_filter


async def _folder_state(conn: AsyncConnection, folder_id: int) -> tuple[int, int, int]:
    """(uidvalidity, uidnext, highestmodseq) of a selectable folder."""
    stmt = select(
        folders.c.uidvalidity, folders.c.uidnext, folders.c.highestmodseq, folders.c.noselect
    ).where(folders.c.id == folder_id)
    row = (await conn.execute(stmt)).first()
    if row is None or row.noselect:
        raise NoSuchFolder("mailbox does not exist", f"folder id {folder_id} is gone or \\Noselect")
    return row.uidvalidity, row.uidnext, row.highestmodseq


class _KeywordCache(dict[str, Keywords]):
    """Most messages share a few keyword strings: parse each distinct string once."""

    def __missing__(self, text: str) -> Keywords:
        parsed = self[text] = split_keywords(text)
        return parsed


def _snapshot_query(dialect: str, folder_id: int) -> Select[str, str, str]:
    """One row of three comma-joined strings: a 10,000-message folder crosses the driver as 3 values.

    Row by row, the driver and SQLAlchemy build objects for every message and the time goes
    there; aggregated, the database joins the numbers in C and json.loads parses them in C.
    The rows come from a subquery ordered by UID, not from an ORDER BY inside the aggregate:
    SQLite 3.40 lacks that syntax, and PostgreSQL 15 would sort each aggregate's input again.
    Both engines aggregate an ordered subquery in its order in practice (SQLite never flattens
    it into an aggregate, flattening rule 16); the three columns share one scan, so they stay
    aligned whatever happens, and `snapshot` re-sorts if the order was not kept.
    """
    m = messages.c
    inner = select(m.uid, m.flags, m.modseq).where(m.folder_id == folder_id).order_by(m.uid).subquery()
    columns: list[ColumnElement[Any]] = [inner.c.uid, inner.c.flags, inner.c.modseq]
    if dialect != "sqlite":  # PostgreSQL's string_agg takes text; SQLite converts (cheaper)
        columns = [cast(column, Text) for column in columns]
    uid, flags, modseq = columns
    return select(
        func.aggregate_strings(uid, ","),
        func.aggregate_strings(flags, ","),
        func.aggregate_strings(modseq, ","),
    )


def _numbers(joined: str) -> list[int]:
    parsed: list[int] = json.loads(f"[{joined}]")
    return parsed


async def snapshot(conn: AsyncConnection, folder_id: int) -> FolderSnapshot:
    uidvalidity, uidnext, highestmodseq = await _folder_state(conn, folder_id)
    uid_text, flag_text, modseq_text = (
        await conn.execute(_snapshot_query(conn.dialect.name, folder_id))
    ).one()
    if uid_text is None:  # an empty folder: the aggregates are NULL
        return FolderSnapshot(folder_id, uidvalidity, uidnext, highestmodseq, [], [], [], [])
    uids, flags, modseqs = _numbers(uid_text), _numbers(flag_text), _numbers(modseq_text)
    if uids != sorted(uids):  # defensive, and cheap (timsort on sorted input is one C pass)
        order = sorted(range(len(uids)), key=uids.__getitem__)
        uids, flags, modseqs = ([column[i] for i in order] for column in (uids, flags, modseqs))
    # Most messages have no keywords: fetch only those that do.
    keywords: list[Keywords] = [()] * len(uids)
    with_keywords = select(messages.c.uid, messages.c.keywords).where(
        messages.c.folder_id == folder_id, HAS_KEYWORDS
    )
    cache = _KeywordCache()
    for uid, text in (await conn.execute(with_keywords)).all():
        index = bisect_left(uids, uid)
        if index < len(uids) and uids[index] == uid:
            keywords[index] = cache[text]
    return FolderSnapshot(folder_id, uidvalidity, uidnext, highestmodseq, uids, flags, keywords, modseqs)


async def changes_since(conn: AsyncConnection, folder_id: int, modseq: int) -> Changes:
    _, uidnext, highestmodseq = await _folder_state(conn, folder_id)
    stmt = (
        select(messages.c.uid, messages.c.flags, messages.c.keywords, messages.c.modseq)
        .where(messages.c.folder_id == folder_id, messages.c.modseq > modseq)
        .order_by(messages.c.uid)
    )
    cache = _KeywordCache()
    changed: list[FlagUpdate] = [
        (r.uid, r.flags, cache[r.keywords], r.modseq) for r in (await conn.execute(stmt)).all()
    ]
    gone = select(expunged.c.uid).where(expunged.c.folder_id == folder_id, expunged.c.modseq > modseq)
    vanished = list((await conn.execute(gone.order_by(expunged.c.uid))).scalars())
    return Changes(changed, vanished, highestmodseq, uidnext)


async def message_meta(
    conn: AsyncConnection, folder_id: int, uids: Sequence[int], *, analysis_columns: bool = True, text: bool = True
) -> list[MessageMeta]:
    """Metadata of the given messages; the analysis columns only when asked for (FETCH FLAGS of
    10,000 messages needs none of the text, and reading it costs most of the query)."""
    condition, exact = uid_filter(messages.c.uid, uids)
    extra = []
    if analysis_columns:
        extra += [analysis.c.envelope, analysis.c.bodystructure]
    if analysis_columns or text:
        extra.append(analysis.c.headers)  # header search keys read it beside the text
    if text:
        extra.append(analysis.c.text)
    source = messages.outerjoin(analysis, analysis.c.digest == messages.c.digest) if extra else messages
    stmt = (
        select(
            messages.c.uid,
            messages.c.flags,
            messages.c.keywords,
            messages.c.modseq,
            messages.c.internaldate,
            messages.c.saved,
            messages.c.size,
            messages.c.digest,
            *extra,
        )
        .select_from(source)
        .where(messages.c.folder_id == folder_id, condition)
        .order_by(messages.c.uid)
    )
    cache = _KeywordCache()
    out = []
    for r in (await conn.execute(stmt)).all():
        if exact is not None and r.uid not in exact:
            continue
        row = r._mapping
        out.append(
            MessageMeta(
                uid=r.uid,
                flags=r.flags,
                keywords=cache[r.keywords],
                modseq=r.modseq,
                internaldate=from_epoch(r.internaldate),
                saved=from_epoch(r.saved),
                size=r.size,
                digest=r.digest,
                envelope=row.get("envelope"),
                bodystructure=row.get("bodystructure"),
                headers=row.get("headers"),
                text=row.get("text"),
            )
        )
    return out


async def search(conn: AsyncConnection, folder_id: int, where: criteria.Criterion) -> list[int]:
    """UIDs matching the criteria, ascending."""
    await _folder_state(conn, folder_id)
    base = messages.c.folder_id == folder_id
    if criteria.sql_friendly(where):
        stmt = select(messages.c.uid).where(base, criteria.to_sql(where)).order_by(messages.c.uid)
        return list((await conn.execute(stmt)).scalars())
    columns = (messages.c.uid, messages.c.flags, messages.c.keywords, messages.c.size)
    stmt = select(*columns, messages.c.internaldate, messages.c.saved, messages.c.modseq).where(base)
    rows = (await conn.execute(stmt.order_by(messages.c.uid))).all()
    return [row.uid for row in rows if criteria.matches(where, row)]


async def change_counter(conn: AsyncConnection, guid: str, folder_id: int | None) -> int | None:
    """The folder's HIGHESTMODSEQ, or the mailbox's change counter; None if it no longer exists."""
    if folder_id is None:
        stmt = select(mailboxes.c.changes).where(mailboxes.c.guid == guid)
    else:
        stmt = select(folders.c.highestmodseq).where(folders.c.id == folder_id, folders.c.mailbox == guid)
    value = (await conn.execute(stmt)).scalar()
    return None if value is None else int(value)


async def digests_in_use(conn: AsyncConnection) -> set[str]:
    """Every blob digest some message of this database references (for blob garbage collection)."""
    return set((await conn.execute(select(messages.c.digest).distinct())).scalars())
