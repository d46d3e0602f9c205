"""UID sets as SQL: a list of UIDs becomes a few range conditions, never thousands of parameters.

IMAP clients name messages by sets such as `1:*` or `4,7:9,20` (RFC 9051 §9, sequence-set); the
IMAP engine resolves them to UIDs and hands us the list. Compacted to ranges, most sets are a
handful of BETWEENs that use the (folder_id, uid) key. A scattered set with many ranges becomes
one BETWEEN over its span plus a filter in Python, so no statement ever exceeds the drivers'
parameter limits (SQLite 32766, asyncpg 32767).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, false, or_

MAX_RANGES = 64
CHUNK = 500  # rows per multi-row statement
T = TypeVar("T")


def ranges(uids: Iterable[int]) -> list[tuple[int, int]]:
    """Ascending, disjoint, maximal (low, high) ranges covering exactly the given UIDs."""
    out: list[tuple[int, int]] = []
    for uid in sorted(set(uids)):
        if out and uid == out[-1][1] + 1:
            out[-1] = (out[-1][0], uid)
        else:
            out.append((uid, uid))
    return out


def uid_filter(
    column: ColumnElement[Any], uids: Sequence[int]
) -> tuple[ColumnElement[bool], frozenset[int] | None]:
    """A condition selecting the UIDs, and the exact set to filter rows by when the condition is wider."""
    spans = ranges(uids)
    if not spans:
        return false(), None
    if len(spans) <= MAX_RANGES:
        return or_(*(column == lo if lo == hi else column.between(lo, hi) for lo, hi in spans)), None
    return column.between(spans[0][0], spans[-1][1]), frozenset(uids)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
