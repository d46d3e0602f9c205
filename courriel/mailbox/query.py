"""Reading messages: folder snapshots, changes since a MODSEQ, FETCH metadata, SEARCH.

These run on the read pool (database.py `read_sync`: synchronous functions, one worker-thread
hop per read on SQLite), each in one short transaction on a consistent snapshot.
A snapshot is one range scan of the (folder_id, uid) key whose numbers come back aggregated into
three strings, plus the few rows that carry keywords: SELECT of a 10,000-message folder then
takes a few milliseconds, and a fraction of one when the folder has not changed since the last
snapshot (snapshots.py). `changes_since` reads the rows and expunge records above a MODSEQ: IDLE
and NOOP updates, CHANGEDSINCE (RFC 7162 §3.1.4) and QRESYNC's VANISHED (EARLIER) (RFC 7162
§3.2.5.2). `search_text` answers SEARCH BODY and TEXT over the stored decoded text.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Select, Text, bindparam, cast, func, or_, select

from courriel.mailbox import criteria
from courriel.mailbox.errors import NoSuchFolder
from courriel.mailbox.flags import Keywords, split_keywords
from courriel.mailbox.model import Changes, FlagUpdate, FolderSnapshot, MessageMeta, from_epoch
from courriel.mailbox.schema import HAS_KEYWORDS, analysis, expunged, folders, mailboxes, messages
from courriel.mailbox.snapshots import SnapshotCache, State
from courriel.mailbox.uidset import MAX_RANGES, ranges, uid_filter

MAX_LISTED = 1000  # UIDs named one by one in a statement (far below either driver's limit)

# Statements built once: SQLAlchemy then finds their compiled SQL without rebuilding a cache key
# each time, which costs as much as the query itself for the one-row reads of every command.
_STATE = select(folders.c.uidvalidity, folders.c.uidnext, folders.c.highestmodseq, folders.c.noselect).where(
    folders.c.id == bindparam("folder_id")
)


def _folder_state(conn: Connection, folder_id: int) -> State:
    """(uidvalidity, uidnext, highestmodseq) of a selectable folder."""
    row = conn.execute(_STATE, {"folder_id": folder_id}).first()
    if row is None or row.noselect:
        raise NoSuchFolder("mailbox does not exist", f"folder id {folder_id} is gone or \\Noselect")
    return int(row.uidvalidity), int(row.uidnext), int(row.highestmodseq)


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


def snapshot(conn: Connection, folder_id: int, cache: SnapshotCache | None = None) -> FolderSnapshot:
    """The folder's state; from `cache` when the folder row shows no change since it was kept."""
    state = _folder_state(conn, folder_id)
    if cache is not None:
        kept = cache.get(folder_id, state)
        if kept is not None:
            return kept
    found = _read_snapshot(conn, folder_id, state)
    if cache is not None:
        cache.put(found)
    return found


def _read_snapshot(conn: Connection, folder_id: int, state: State) -> FolderSnapshot:
    uidvalidity, uidnext, highestmodseq = state
    uid_text, flag_text, modseq_text = (conn.execute(_snapshot_query(conn.dialect.name, folder_id))).one()
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
    for uid, text in (conn.execute(with_keywords)).all():
        index = bisect_left(uids, uid)
        if index < len(uids) and uids[index] == uid:
            keywords[index] = cache[text]
    return FolderSnapshot(folder_id, uidvalidity, uidnext, highestmodseq, uids, flags, keywords, modseqs)


def changes_since(conn: Connection, folder_id: int, modseq: int) -> Changes:
    _, uidnext, highestmodseq = _folder_state(conn, folder_id)
    stmt = (
        select(messages.c.uid, messages.c.flags, messages.c.keywords, messages.c.modseq)
        .where(messages.c.folder_id == folder_id, messages.c.modseq > modseq)
        .order_by(messages.c.uid)
    )
    cache = _KeywordCache()
    changed: list[FlagUpdate] = [
        (r.uid, r.flags, cache[r.keywords], r.modseq) for r in (conn.execute(stmt)).all()
    ]
    gone = select(expunged.c.uid).where(expunged.c.folder_id == folder_id, expunged.c.modseq > modseq)
    vanished = list((conn.execute(gone.order_by(expunged.c.uid))).scalars())
    return Changes(changed, vanished, highestmodseq, uidnext)


def _extra_columns(analysis_columns: bool, text: bool, header_block: bool) -> list[ColumnElement[Any]]:
    extra: list[ColumnElement[Any]] = [analysis.c.header] if header_block else []
    if analysis_columns:
        extra += [analysis.c.envelope, analysis.c.bodystructure]
    if text:
        extra += [analysis.c.headers, analysis.c.text]  # header search keys read it beside the text
    return extra


@lru_cache(maxsize=32)
def _meta_statement(
    analysis_columns: bool, text: bool, header_block: bool, uids: Literal["span", "list", "any"]
) -> Select[Any]:
    """The metadata query: for UIDs between :lo and :hi ("span"), in :uids ("list", expanded
    into one parameter per UID), or for the caller to narrow ("any")."""
    extra = _extra_columns(analysis_columns, text, header_block)
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
        .where(messages.c.folder_id == bindparam("folder_id"))
        .order_by(messages.c.uid)
    )
    if uids == "span":
        stmt = stmt.where(messages.c.uid.between(bindparam("lo"), bindparam("hi")))
    elif uids == "list":
        stmt = stmt.where(messages.c.uid.in_(bindparam("uids", expanding=True)))
    return stmt


def message_meta(
    conn: Connection,
    folder_id: int,
    uids: Sequence[int],
    *,
    analysis_columns: bool = True,
    text: bool = True,
    header_block: bool = False,
) -> list[MessageMeta]:
    """Metadata of the given messages; the analysis columns only when asked for (FETCH FLAGS of
    10,000 messages needs none of the text, and reading it costs most of the query)."""
    spans = ranges(uids)
    params: dict[str, Any]
    exact: frozenset[int] | None = None
    if len(spans) == 1:  # one message, or a run such as 1:*
        stmt, params = (
            _meta_statement(analysis_columns, text, header_block, "span"),
            {"lo": spans[0][0], "hi": spans[0][1]},
        )
    elif len(spans) > MAX_RANGES and len(uids) <= MAX_LISTED:  # scattered: read just those rows
        stmt, params = (
            _meta_statement(analysis_columns, text, header_block, "list"),
            {"uids": sorted(set(uids))},
        )
    else:
        condition, exact = uid_filter(messages.c.uid, uids)
        stmt, params = _meta_statement(analysis_columns, text, header_block, "any").where(condition), {}
    extra = _extra_columns(analysis_columns, text, header_block)
    at = {column.name: 8 + k for k, column in enumerate(extra)}  # positions of the extra columns
    env, struct, head, body, block = (
        at.get(name, -1) for name in ("envelope", "bodystructure", "headers", "text", "header")
    )
    cache = _KeywordCache()
    out = []
    for r in conn.execute(stmt, {"folder_id": folder_id, **params}).all():
        uid = r[0]
        if exact is not None and uid not in exact:
            continue
        out.append(
            MessageMeta(
                uid,
                r[1],
                cache[r[2]],
                r[3],
                from_epoch(r[4]),
                from_epoch(r[5]),
                r[6],
                r[7],
                r[env] if env > 0 else None,
                r[struct] if struct > 0 else None,
                r[head] if head > 0 else None,
                r[body] if body > 0 else None,
                r[block] if block > 0 else None,
            )
        )
    return out


def search(conn: Connection, folder_id: int, where: criteria.Criterion) -> list[int]:
    """UIDs matching the criteria, ascending."""
    _folder_state(conn, folder_id)
    base = messages.c.folder_id == folder_id
    if criteria.sql_friendly(where):
        stmt = select(messages.c.uid).where(base, criteria.to_sql(where)).order_by(messages.c.uid)
        return list((conn.execute(stmt)).scalars())
    columns = (messages.c.uid, messages.c.flags, messages.c.keywords, messages.c.size)
    stmt = select(*columns, messages.c.internaldate, messages.c.saved, messages.c.modseq).where(base)
    rows = (conn.execute(stmt.order_by(messages.c.uid))).all()
    return [row.uid for row in rows if criteria.matches(where, row)]


def search_text(conn: Connection, folder_id: int, needle: str, *, headers: bool) -> list[int] | None:
    """UIDs whose decoded body text (and, with `headers`, header text) holds `needle`, ascending;
    None when some message has no searchable text stored yet (the caller computes it then).

    `needle` must be in the stored text's normal form (search_text.normalise: case-folded, white
    space collapsed), so that a plain substring test is the case-insensitive match RFC 9051
    §6.4.4 asks for, run in the database: LIKE '%needle%' on SQLite (twice as fast as instr()
    there; its ASCII case folding changes nothing on case-folded text), strpos() on PostgreSQL.
    """
    _folder_state(conn, folder_id)
    a = analysis.c

    pattern = "%" + needle.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"

    def holds(column: ColumnElement[str | None]) -> ColumnElement[bool]:
        if conn.dialect.name == "sqlite":
            return column.like(pattern, escape="/")
        return func.strpos(column, needle) > 0

    hit = or_(holds(a.text), holds(a.headers)) if headers else holds(a.text)
    unknown = or_(a.text.is_(None), a.headers.is_(None))
    stmt = (
        select(messages.c.uid, unknown)
        .select_from(messages.outerjoin(analysis, a.digest == messages.c.digest))
        .where(messages.c.folder_id == folder_id, or_(unknown, hit))
        .order_by(messages.c.uid)
    )
    rows = (conn.execute(stmt)).all()
    if any(row[1] for row in rows):
        return None
    return [row[0] for row in rows]


_MAILBOX_COUNTER = select(mailboxes.c.changes).where(mailboxes.c.guid == bindparam("guid"))
_FOLDER_COUNTER = select(folders.c.highestmodseq).where(
    folders.c.id == bindparam("folder_id"), folders.c.mailbox == bindparam("guid")
)


def change_counter(conn: Connection, guid: str, folder_id: int | None) -> int | None:
    """The folder's HIGHESTMODSEQ, or the mailbox's change counter; None if it no longer exists."""
    if folder_id is None:
        value = conn.execute(_MAILBOX_COUNTER, {"guid": guid}).scalar()
    else:
        value = conn.execute(_FOLDER_COUNTER, {"guid": guid, "folder_id": folder_id}).scalar()
    return None if value is None else int(value)


def digests_in_use(conn: Connection) -> set[str]:
    """Every blob digest some message of this database references (for blob garbage collection)."""
    return set((conn.execute(select(messages.c.digest).distinct())).scalars())
