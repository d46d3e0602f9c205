"""Pure parts of the store: folder names, flag names and keywords, UID ranges (with hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courriel.mailbox.errors import InvalidFolderName, SpecialUseRefused
from courriel.mailbox.flags import (
    ALL_SYSTEM,
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    SEEN,
    FlagError,
    apply_store,
    flag_names,
    join_keywords,
    normalize_keywords,
    parse_flags,
    split_keywords,
)
from courriel.mailbox.names import (
    canonical_special_use,
    is_within,
    normalize_name,
    parent_names,
)
from courriel.mailbox.uidset import ranges

atoms = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters='(){ %*"\\]'),
    min_size=1,
    max_size=12,
)
keyword_sets = st.lists(atoms, max_size=8)
system = st.integers(min_value=0, max_value=ALL_SYSTEM)


def test_flag_names_round_trip() -> None:
    bits, keywords = parse_flags(["\\seen", "\\FLAGGED", "$Forwarded", "\\Draft"])
    assert bits == SEEN | FLAGGED | DRAFT and keywords == ("$Forwarded",)
    assert flag_names(bits, keywords) == ["\\Seen", "\\Flagged", "\\Draft", "$Forwarded"]
    assert flag_names(ANSWERED | DELETED) == ["\\Answered", "\\Deleted"]


@pytest.mark.parametrize("bad", ["\\Recent", "\\Bogus", "has space", "paren(", "", "x" * 101, "é"])
def test_unstorable_flags_are_refused(bad: str) -> None:
    with pytest.raises(FlagError):
        parse_flags([bad])


def test_too_many_keywords() -> None:
    with pytest.raises(FlagError):
        normalize_keywords(f"k{n}" for n in range(65))


@given(keyword_sets)
def test_keywords_normalize_case_insensitively_and_idempotently(words: list[str]) -> None:
    once = normalize_keywords(words)
    assert normalize_keywords(once) == once
    assert len({w.casefold() for w in once}) == len(once) == len({w.casefold() for w in words})
    assert split_keywords(join_keywords(once)) == once
    first: dict[str, str] = {}
    for word in words:
        first.setdefault(word.casefold(), word)
    assert set(once) == set(first.values())  # the first spelling of each keyword is kept


@given(system, keyword_sets, system, keyword_sets)
def test_store_modes(old: int, old_words: list[str], bits: int, words: list[str]) -> None:
    old_kw, new_kw = normalize_keywords(old_words), normalize_keywords(words)
    added = apply_store("add", old, old_kw, bits, new_kw)
    removed = apply_store("remove", old, old_kw, bits, new_kw)
    replaced = apply_store("replace", old, old_kw, bits, new_kw)
    assert added[0] == old | bits and removed[0] == old & ~bits and replaced == (bits, new_kw)
    folded = {w.casefold() for w in new_kw}
    assert {w.casefold() for w in added[1]} == {w.casefold() for w in old_kw} | folded
    assert {w.casefold() for w in removed[1]} == {w.casefold() for w in old_kw} - folded
    # Adding what is there, or removing what is not, changes nothing (so takes no MODSEQ).
    assert apply_store("add", *added, bits, new_kw) == added
    assert apply_store("remove", *removed, bits, new_kw) == removed


def test_folder_names() -> None:
    assert normalize_name("inbox") == "INBOX"
    assert normalize_name("InBox/Sub/inbox") == "INBOX/Sub/inbox"
    assert normalize_name("Inboxes") == "Inboxes"
    assert normalize_name("Projets/Été") == "Projets/Été"
    assert normalize_name("Cafe\u0301") == "Café"  # stored in NFC
    assert normalize_name("a/b/", allow_trailing_separator=True) == "a/b"
    with pytest.raises(InvalidFolderName):
        normalize_name("a/b/")
    assert parent_names("a/b/c") == ["a", "a/b"] and parent_names("a") == []
    assert is_within("a/b", "a") and is_within("a", "a") and not is_within("ab", "a")


def test_special_use_attributes() -> None:
    assert canonical_special_use("\\SENT") == "\\Sent"
    assert canonical_special_use(None) is None
    for refused in ("\\All", "\\Flagged", "\\Inbox", "Sent"):
        with pytest.raises(SpecialUseRefused):
            canonical_special_use(refused)


@given(st.text(max_size=40))
def test_name_normalization_is_idempotent_or_refuses(name: str) -> None:
    try:
        once = normalize_name(name)
    except InvalidFolderName:
        return
    assert normalize_name(once) == once
    assert all(level for level in once.split("/"))


@given(st.sets(st.integers(min_value=1, max_value=200)))
def test_ranges_cover_exactly_and_are_maximal(uids: set[int]) -> None:
    spans = ranges(uids)
    covered = {uid for lo, hi in spans for uid in range(lo, hi + 1)}
    assert covered == uids
    assert all(a[1] + 1 < b[0] for a, b in zip(spans, spans[1:], strict=False))
