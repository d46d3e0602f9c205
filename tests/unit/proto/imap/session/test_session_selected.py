"""The selected-folder view: positions, removal, \\Recent ranges, flag serialisation, UID sets."""

from __future__ import annotations

from courriel.proto.imap.sequence import parse_sequence_set
from courriel.proto.imap.session.selected import SelectedView, in_set
from tests.unit.proto.imap.session.fakestore import Snapshot


def view() -> SelectedView:
    snap = Snapshot(
        7,
        11,
        30,
        [2, 3, 5, 8, 10],
        [1, 0, 5, 8, 0],
        [(), ("$A",), (), ("$A", "$B"), ("$A",)],
        [3, 4, 5, 6, 7],
    )
    return SelectedView(1, "INBOX", False, snap)


def test_positions_and_removal_keep_columns_aligned() -> None:
    v = view()
    assert v.position(5) == 2 and v.position(4) is None
    v.gone = {3, 8}
    v.remove([1, 3])
    assert list(v.uids) == [2, 5, 10]
    assert list(v.flags) == [1, 5, 0]
    assert [v.keywords(i) for i in range(3)] == [(), (), ("$A",)]
    assert list(v.modseqs) == [3, 5, 7]
    assert v.gone == set()


def test_recent_ranges_and_counts() -> None:
    v = view()
    v.add_recent(5, 9)
    v.add(12, 0, (), 31)
    v.add_recent(12, 13)
    assert [v.is_recent(u) for u in v.uids] == [False, False, True, True, False, True]
    assert v.recent_count() == 3
    assert v.flag_names(2, with_recent=True) == ("\\Seen", "\\Flagged", "\\Recent")
    assert v.flag_names(2, with_recent=False) == ("\\Seen", "\\Flagged")


def test_flags_getter_matches_flags_item() -> None:
    v = view()
    v.add_recent(8, 9)
    get = v.flags_getter(True)
    assert [get(i) for i in range(5)] == [v.flags_item(i, True) for i in range(5)]
    assert get(3) == b"(\\Deleted $A $B \\Recent)"


def test_update_reports_visible_changes_only() -> None:
    v = view()
    assert not v.update(0, 1, (), 9)
    assert v.modseqs[0] == 9
    assert v.update(1, 0, ("$B",), 10)
    assert v.keywords_in_use() == ["$A", "$B"]


def test_first_unseen() -> None:
    assert view().first_unseen() == 2


def test_in_set_with_star_and_saved() -> None:
    assert in_set(9, parse_sequence_set(b"5:*"), 9)
    assert not in_set(4, parse_sequence_set(b"5:*"), 9)
    assert in_set(3, parse_sequence_set(b"$"), 9, [3])
