"""Sequence sets: parsing, compact formatting and resolution against a mailbox's UID list.

RFC 9051 §9 (sequence-set, seq-range, seq-number): a comma-separated list of numbers and ranges
where `*` is the largest number in use and a range may be written in either order (`4:2` is
`2:4`). RFC 5182 adds `$`, the saved result of the last `SEARCH RETURN (SAVE)`.

`resolve` is the one place where a set meets a mailbox: it maps a set, read either as message
sequence numbers or as UIDs, onto positions in the mailbox's sorted UID list. It is pure and uses
bisection, so `UID FETCH 1:*` over 100,000 messages costs one slice.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from courriel.proto.imap.errors import ParseError, SequenceError

#: Stands for `*` in a range bound. Zero never occurs otherwise: seq-number is nz-number.
STAR: Final = 0

#: RFC 9051 §9: nz-number is a 32-bit unsigned value without a leading zero.
MAX_NUMBER: Final = 4_294_967_295

_SET_RE: Final = re.compile(rb"(?:\d+|\*)(?::(?:\d+|\*))?(?:,(?:\d+|\*)(?::(?:\d+|\*))?)*")


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A parsed sequence-set: inclusive (low, high) ranges with `STAR` for `*`, or `$`.

    Ranges keep the client's order of bounds normalised to low <= high only when both are
    numbers; a range with `*` is kept as (n, STAR) because `*` is only known at resolve time.
    """

    ranges: tuple[tuple[int, int], ...]
    saved: bool = False

    def __str__(self) -> str:
        if self.saved:
            return "$"
        return ",".join(_format_range(lo, hi) for lo, hi in self.ranges)

    @property
    def has_star(self) -> bool:
        return any(lo == STAR or hi == STAR for lo, hi in self.ranges)


SAVED: Final = SequenceSet((), saved=True)


def _format_range(lo: int, hi: int) -> str:
    a = "*" if lo == STAR else str(lo)
    if lo == hi:
        return a
    return a + ":" + ("*" if hi == STAR else str(hi))


def _number(token: bytes) -> int:
    if token == b"*":
        return STAR
    # RFC 9051 §9: nz-number, 32 bits; the length test keeps int() away from huge digit runs.
    n = int(token) if len(token) <= 10 else 0
    if n == 0 or n > MAX_NUMBER:
        raise ParseError("Invalid sequence number")
    return n


def parse_sequence_set(data: bytes, *, allow_saved: bool = True) -> SequenceSet:
    """Parse one whole sequence-set token (`1:4,7,9:*` or `$`)."""
    if data == b"$":
        if not allow_saved:
            raise ParseError("$ is not allowed here")
        return SAVED
    if not _SET_RE.fullmatch(data):
        raise ParseError("Invalid sequence set")
    ranges: list[tuple[int, int]] = []
    for item in data.split(b","):
        lo_s, sep, hi_s = item.partition(b":")
        lo = _number(lo_s)
        hi = _number(hi_s) if sep else lo
        if lo != STAR and hi != STAR and lo > hi or lo == STAR and hi != STAR:
            lo, hi = hi, lo
        ranges.append((lo, hi))
    return SequenceSet(tuple(ranges))


def format_set(numbers: Iterable[int]) -> str:
    """Compact a collection of numbers into a sequence-set string: 1,2,3,7,9,10 → `1:3,7,9:10`.

    Used for COPYUID, VANISHED, MODIFIED and ESEARCH ALL (RFC 4315, 7162, 4731), which want the
    shortest set; order is ascending and duplicates vanish.
    """
    ordered = sorted(set(numbers))
    if not ordered:
        return ""
    parts: list[str] = []
    start = prev = ordered[0]
    for n in ordered[1:]:
        if n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = n
    parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def format_ordered_set(numbers: Sequence[int]) -> str:
    """Like `format_set` but keeps the given order (COPYUID pairs source and destination UIDs
    position by position, RFC 4315 §3), joining only ascending runs."""
    if not numbers:
        return ""
    parts: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:]:
        if n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = n
    parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def resolve(
    seqset: SequenceSet,
    uids: Sequence[int],
    by_uid: bool,
    saved: Sequence[int] = (),
) -> list[int]:
    """Positions (0-based, ascending, unique) in `uids` that `seqset` names.

    `uids` is the mailbox's UID list in ascending order (position i is message i+1). With
    `by_uid` the set holds UIDs: numbers that name no message are skipped (RFC 9051 §6.4.9:
    a UID range need not exist) and `*` is the highest UID, so `559:*` always includes the last
    message (RFC 3501 §6.4.8). Without it the set holds sequence numbers and one beyond the
    mailbox raises `SequenceError`, as does `*` in an empty mailbox (RFC 9051 §9, seq-number).
    `saved` is the UID list saved by SEARCH RETURN (SAVE) that `$` names (RFC 5182 §2.1).
    """
    if seqset.saved:
        return _positions_of(saved, uids)
    count = len(uids)
    if by_uid:
        top = uids[-1] if count else 0
        spans: list[tuple[int, int]] = []
        for lo, hi in seqset.ranges:
            lo = top if lo == STAR else lo
            hi = top if hi == STAR else hi
            if lo > hi:
                lo, hi = hi, lo
            start, end = bisect_left(uids, lo), bisect_right(uids, hi)
            if start < end:
                spans.append((start, end))
    else:
        spans = []
        for lo, hi in seqset.ranges:
            lo = count if lo == STAR else lo
            hi = count if hi == STAR else hi
            if lo > hi:
                lo, hi = hi, lo
            if hi > count or lo < 1:
                raise SequenceError("Invalid message sequence number")
            spans.append((lo - 1, hi))
    return _merge(spans)


def _merge(spans: list[tuple[int, int]]) -> list[int]:
    """Union of half-open position spans as one ascending list."""
    if len(spans) == 1:
        start, end = spans[0]
        return list(range(start, end))
    spans.sort()
    out: list[int] = []
    reach = 0
    for start, end in spans:
        start = max(start, reach)
        if start < end:
            out.extend(range(start, end))
            reach = end
    return out


def _positions_of(wanted: Sequence[int], uids: Sequence[int]) -> list[int]:
    out: list[int] = []
    for uid in sorted(set(wanted)):
        i = bisect_left(uids, uid)
        if i < len(uids) and uids[i] == uid:
            out.append(i)
    return out
