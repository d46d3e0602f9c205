"""Search criteria the store answers from message rows: the part of IMAP SEARCH SQL can do.

The IMAP engine maps its search program (RFC 9051 §6.4.4, RFC 7162 §3.1.5 MODSEQ, RFC 8514
SAVEDBEFORE/SAVEDON/SAVEDSINCE) onto these nodes; text and header keys (BODY, SUBJECT,
SENTBEFORE …) are not here: the engine filters the UIDs we return. Dates disregard time and
zone and are taken in UTC, which is how internal dates are stored (RFC 9051 §6.4.4, BEFORE).
Each node compiles to SQL; the same tree can be evaluated in Python over a row, which serves
UID sets too scattered for one statement and is the oracle the SQL is tested against.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, literal, not_, or_, true

from courriel.mailbox.schema import messages
from courriel.mailbox.uidset import MAX_RANGES, ranges, uid_filter


@dataclass(frozen=True, slots=True)
class Uids:
    """UID <sequence-set>, resolved to UIDs by the IMAP engine."""

    uids: frozenset[int]


@dataclass(frozen=True, slots=True)
class Flags:
    """All of `present` set and all of `absent` clear (SEEN, UNSEEN, DELETED, UNDRAFT …)."""

    present: int = 0
    absent: int = 0


@dataclass(frozen=True, slots=True)
class Keyword:
    """KEYWORD / UNKEYWORD; keywords compare case-insensitively."""

    name: str
    present: bool = True


@dataclass(frozen=True, slots=True)
class Size:
    """LARGER n (size > n) and/or SMALLER n (size < n), in octets."""

    larger: int | None = None
    smaller: int | None = None


@dataclass(frozen=True, slots=True)
class Date:
    """BEFORE/ON/SINCE on the internal date, or on the save date (RFC 8514) with `saved`."""

    relation: Literal["before", "on", "since"]
    day: date
    saved: bool = False


@dataclass(frozen=True, slots=True)
class ModSeq:
    """MODSEQ n: messages whose MODSEQ is n or more (RFC 7162 §3.1.5)."""

    at_least: int


@dataclass(frozen=True, slots=True)
class And:
    """All of the items; an empty And is ALL."""

    items: tuple[Criterion, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Or:
    left: Criterion
    right: Criterion


@dataclass(frozen=True, slots=True)
class Not:
    item: Criterion


Criterion = Uids | Flags | Keyword | Size | Date | ModSeq | And | Or | Not
SearchCriteria = Criterion


def _day_start(day: date) -> int:
    return calendar.timegm(day.timetuple())


def _date_bounds(node: Date) -> tuple[int | None, int | None]:
    """[low, high) in Unix seconds for the node's relation."""
    start = _day_start(node.day)
    if node.relation == "before":
        return None, start
    if node.relation == "on":
        return start, _day_start(node.day + timedelta(days=1))
    return start, None


def sql_friendly(node: Criterion) -> bool:
    """False when some UID set is too scattered to be one statement: evaluate in Python instead."""
    if isinstance(node, Uids):
        return len(ranges(node.uids)) <= MAX_RANGES
    if isinstance(node, And):
        return all(sql_friendly(item) for item in node.items)
    if isinstance(node, Or):
        return sql_friendly(node.left) and sql_friendly(node.right)
    if isinstance(node, Not):
        return sql_friendly(node.item)
    return True


def to_sql(node: Criterion) -> ColumnElement[bool]:
    m = messages.c
    if isinstance(node, Uids):
        condition, _ = uid_filter(m.uid, sorted(node.uids))  # exact: sql_friendly was checked
        return condition
    if isinstance(node, Flags):
        parts = []
        if node.present:
            parts.append(m.flags.op("&")(node.present) == node.present)
        if node.absent:
            parts.append(m.flags.op("&")(node.absent) == 0)
        return and_(true(), *parts)
    if isinstance(node, Keyword):
        padded = literal(" ") + m.keywords + literal(" ")
        found = func.lower(padded).contains(f" {node.name.lower()} ", autoescape=True)
        return found if node.present else not_(found)
    if isinstance(node, Size):
        parts = []
        if node.larger is not None:
            parts.append(m.size > node.larger)
        if node.smaller is not None:
            parts.append(m.size < node.smaller)
        return and_(true(), *parts)
    if isinstance(node, Date):
        column = m.saved if node.saved else m.internaldate
        low, high = _date_bounds(node)
        parts = []
        if low is not None:
            parts.append(column >= low)
        if high is not None:
            parts.append(column < high)
        return and_(*parts)
    if isinstance(node, ModSeq):
        return m.modseq >= node.at_least
    if isinstance(node, And):
        return and_(true(), *(to_sql(item) for item in node.items))
    if isinstance(node, Or):
        return or_(to_sql(node.left), to_sql(node.right))
    return not_(to_sql(node.item))


def matches(node: Criterion, row: Any) -> bool:
    """The same criteria over one row (uid, flags, keywords, size, internaldate, saved, modseq)."""
    if isinstance(node, Uids):
        return bool(row.uid in node.uids)
    if isinstance(node, Flags):
        return row.flags & node.present == node.present and not row.flags & node.absent
    if isinstance(node, Keyword):
        found = node.name.lower() in {k.lower() for k in row.keywords.split()}
        return found == node.present
    if isinstance(node, Size):
        return (node.larger is None or row.size > node.larger) and (
            node.smaller is None or row.size < node.smaller
        )
    if isinstance(node, Date):
        value = row.saved if node.saved else row.internaldate
        low, high = _date_bounds(node)
        return (low is None or value >= low) and (high is None or value < high)
    if isinstance(node, ModSeq):
        return bool(row.modseq >= node.at_least)
    if isinstance(node, And):
        return all(matches(item, row) for item in node.items)
    if isinstance(node, Or):
        return matches(node.left, row) or matches(node.right, row)
    return not matches(node.item, row)
