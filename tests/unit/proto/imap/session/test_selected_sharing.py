"""Views of a folder in the same state share their columns, and each gets its own copy at its
first change (selected.py `_Columns`): a thousand sessions in IDLE on one Inbox hold one copy."""

from __future__ import annotations

from courriel.proto.imap.session.selected import SelectedView
from tests.unit.proto.imap.session.fakestore import Snapshot


def snap(modseq: int = 30, flags: tuple[int, ...] = (1, 0, 5)) -> Snapshot:
    return Snapshot(7, 11, modseq, [2, 3, 5], list(flags), [(), ("$A",), ()], [3, 4, 5])


def test_views_in_the_same_state_share_until_one_changes() -> None:
    a, b = SelectedView(1, "INBOX", False, snap()), SelectedView(1, "INBOX", False, snap())
    assert a.uids is b.uids and a.flags is b.flags and a.kw is b.kw and a.modseqs is b.modseqs
    a.update(0, 8, ("$New",), 31)
    assert a.uids is not b.uids and a.flags is not b.flags and a.kw_table is not b.kw_table
    assert list(b.flags) == [1, 0, 5] and b.keywords(0) == () and b.kw_table == [(), ("$A",)]
    assert a.flags[0] == 8 and a.keywords(0) == ("$New",)
    b.add(9, 0, ("$A",), 32)
    assert list(b.uids) == [2, 3, 5, 9] and list(a.uids) == [2, 3, 5]
    c = SelectedView(1, "INBOX", False, snap())  # the first two changed: the columns live on
    d = SelectedView(1, "INBOX", False, snap())
    assert c.uids is d.uids and c.uids is not a.uids and c.uids is not b.uids


def test_removal_leaves_the_shared_columns_alone() -> None:
    a, b = SelectedView(1, "INBOX", False, snap()), SelectedView(1, "INBOX", False, snap())
    a.remove([1])
    assert list(a.uids) == [2, 5] and list(b.uids) == [2, 3, 5]
    a.update(0, 0, ("$Other",), 31)
    assert b.kw_table == [(), ("$A",)]


def test_different_states_do_not_share() -> None:
    a = SelectedView(1, "INBOX", False, snap())
    b = SelectedView(1, "INBOX", False, snap(flags=(1, 1, 5)))  # same key, other content
    c = SelectedView(1, "INBOX", False, snap(modseq=31))
    assert a.flags is not b.flags and a.flags is not c.flags
    assert list(b.flags) == [1, 1, 5]
