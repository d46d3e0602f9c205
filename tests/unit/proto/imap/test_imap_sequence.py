"""Sequence sets: parsing, compact formatting, resolution over a UID list (RFC 9051 §9)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courriel.proto.imap.errors import ParseError, SequenceError
from courriel.proto.imap.sequence import (
    SAVED,
    STAR,
    SequenceSet,
    format_ordered_set,
    format_set,
    parse_sequence_set,
    resolve,
)

UIDS = [3, 5, 6, 7, 10, 20, 21]


def test_parse_normalises_reversed_ranges_and_star() -> None:
    assert parse_sequence_set(b"4:2,7,*:9,*") == SequenceSet(((2, 4), (7, 7), (9, STAR), (STAR, STAR)))
    assert str(parse_sequence_set(b"4:2,7,*:9,*")) == "2:4,7,9:*,*"
    assert parse_sequence_set(b"$") is SAVED


@pytest.mark.parametrize(
    "bad", [b"", b"0", b"1:0", b"1,,2", b"1:", b":3", b"4294967296", b"1" * 5000, b"a", b"$,1"]
)
def test_parse_rejects(bad: bytes) -> None:
    with pytest.raises(ParseError):
        parse_sequence_set(bad)


def test_saved_not_allowed() -> None:
    with pytest.raises(ParseError):
        parse_sequence_set(b"$", allow_saved=False)


def test_format_set() -> None:
    assert format_set([1, 2, 3, 7, 9, 10, 3]) == "1:3,7,9:10"
    assert format_set([]) == ""
    assert format_ordered_set([5, 6, 7, 2, 3]) == "5:7,2:3"


def test_resolve_by_uid() -> None:
    assert resolve(parse_sequence_set(b"1:*"), UIDS, by_uid=True) == list(range(7))
    assert resolve(parse_sequence_set(b"6:10"), UIDS, by_uid=True) == [2, 3, 4]
    assert resolve(parse_sequence_set(b"8:9,100"), UIDS, by_uid=True) == []
    # RFC 3501 §6.4.8: 559:* always includes the last message.
    assert resolve(parse_sequence_set(b"559:*"), UIDS, by_uid=True) == [6]
    assert resolve(parse_sequence_set(b"*"), [], by_uid=True) == []
    assert resolve(parse_sequence_set(b"20,3,20:21"), UIDS, by_uid=True) == [0, 5, 6]


def test_resolve_by_sequence_number() -> None:
    assert resolve(parse_sequence_set(b"2:3,*"), UIDS, by_uid=False) == [1, 2, 6]
    assert resolve(parse_sequence_set(b"*:6"), UIDS, by_uid=False) == [5, 6]
    with pytest.raises(SequenceError):
        resolve(parse_sequence_set(b"8"), UIDS, by_uid=False)
    with pytest.raises(SequenceError):
        resolve(parse_sequence_set(b"*"), [], by_uid=False)


def test_resolve_saved() -> None:
    assert resolve(SAVED, UIDS, by_uid=True, saved=[21, 4, 5]) == [1, 6]
    assert resolve(SAVED, UIDS, by_uid=False, saved=[]) == []


def test_resolve_is_fast_on_large_mailboxes() -> None:
    uids = list(range(1, 200_001))
    assert len(resolve(parse_sequence_set(b"1:*"), uids, by_uid=True)) == 200_000


numbers = st.integers(min_value=1, max_value=4_294_967_295)
bounds = st.one_of(numbers, st.just(STAR))
ranges = st.tuples(bounds, bounds).map(
    lambda r: (min(r), max(r)) if STAR not in r else ((r[0], r[1]) if r[1] == STAR else (r[1], r[0]))
)


@given(st.lists(ranges, min_size=1, max_size=20))
def test_round_trip(items: list[tuple[int, int]]) -> None:
    seqset = SequenceSet(tuple(items))
    assert parse_sequence_set(str(seqset).encode()) == seqset


@given(st.sets(st.integers(min_value=1, max_value=500), max_size=60))
def test_format_then_resolve_is_identity(values: set[int]) -> None:
    uids = list(range(1, 501))
    text = format_set(values)
    if not values:
        assert text == ""
        return
    positions = resolve(parse_sequence_set(text.encode()), uids, by_uid=True)
    assert [uids[p] for p in positions] == sorted(values)


@given(st.lists(ranges, min_size=1, max_size=8), st.lists(st.integers(1, 300), max_size=40, unique=True))
def test_resolve_matches_naive_model(items: list[tuple[int, int]], raw_uids: list[int]) -> None:
    uids = sorted(raw_uids)
    seqset = SequenceSet(tuple(items))
    top = uids[-1] if uids else 0
    wanted = set()
    for lo, hi in items:
        a, b = (top if lo == STAR else lo), (top if hi == STAR else hi)
        a, b = min(a, b), max(a, b)
        wanted |= {i for i, u in enumerate(uids) if a <= u <= b}
    assert resolve(seqset, uids, by_uid=True) == sorted(wanted)
