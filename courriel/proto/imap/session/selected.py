"""The session's view of its selected folder: sequence numbers ↔ UIDs, flags, MODSEQs, \\Recent.

RFC 9051 §2.3.1: message sequence numbers are positions in the UID-ordered list the client
knows; they only change when the session announces it (EXISTS for new messages, EXPUNGE or
VANISHED for removed ones, RFC 9051 §7.4.1, RFC 7162 §3.2.10). So the view keeps messages that
another session expunged ("gone") until this session may say so, and counts what it told the
client. It starts from the store's snapshot (one query) and is then kept current by applying
`changes_since` (updates.py) and this session's own STOREs.

Memory matters (thousands of idle sessions): compact arrays, one byte of system flags per
message, keywords as an index into a small table of the distinct keyword sets in use; and the
sessions that select the same folder in the same state share those arrays (`_Columns`, found
by content in a weak registry) until one of them changes its copy: a thousand IDLE sessions on
one 10,000-message Inbox hold one set of columns, not a thousand.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Final
from weakref import WeakValueDictionary

from courriel.proto.imap import writer as w
from courriel.proto.imap.backend import SEEN, SYSTEM_FLAGS, SnapshotView
from courriel.proto.imap.sequence import STAR, SequenceSet

RECENT: Final = "\\Recent"
#: The names of every combination of system flags, in RFC 9051 §2.3.2 order.
SYSTEM_NAMES: Final = tuple(tuple(name for bit, name in SYSTEM_FLAGS if bits & bit) for bits in range(256))
_UNSEEN_TABLE: Final = bytes(0 if b & SEEN else 1 for b in range(256))
NO_KEYWORDS: tuple[str, ...] = ()


def in_set(uid: int, seqset: SequenceSet, top: int, saved: Sequence[int] = ()) -> bool:
    """Whether a UID set names `uid`, with `*` standing for `top` (RFC 9051 §9) and `$` for
    the saved search result (RFC 5182)."""
    if seqset.saved:
        return uid in saved
    for lo, hi in seqset.ranges:
        lo, hi = top if lo == STAR else lo, top if hi == STAR else hi
        if min(lo, hi) <= uid <= max(lo, hi):
            return True
    return False


Columns = tuple["array[int]", bytearray, "array[int]", "array[int]", list[tuple[str, ...]]]


def _adoptable(snapshot: SnapshotView) -> Columns | None:
    """(uids, flags, modseqs, keyword ids, keyword table) of a snapshot already in the view's
    layout, as the store's kept snapshots are (mailbox/snapshots.py), else None."""
    uids, flags, modseqs = snapshot.uids, snapshot.flags, snapshot.modseqs
    kw, table = getattr(snapshot.keywords, "ids", None), getattr(snapshot.keywords, "table", None)
    if (
        isinstance(uids, array)
        and uids.typecode == "I"
        and isinstance(modseqs, array)
        and modseqs.typecode == "Q"
        and isinstance(flags, bytearray)
        and isinstance(kw, array)
        and kw.typecode == "I"
        and isinstance(table, tuple)
    ):
        return uids, flags, modseqs, kw, list(table)
    return None


class _Columns:
    """A view's per-message columns, as shared between views (never changed once shared)."""

    __slots__ = ("uids", "flags", "kw", "modseqs", "kw_table", "__weakref__")

    def __init__(self, view: SelectedView) -> None:
        self.uids, self.flags, self.kw = view.uids, view.flags, view.kw
        self.modseqs, self.kw_table = view.modseqs, view.kw_table

    def same(self, view: SelectedView) -> bool:
        return (
            self.uids == view.uids
            and self.flags == view.flags
            and self.modseqs == view.modseqs
            and self.kw == view.kw
            and self.kw_table == view.kw_table
        )


#: (UIDVALIDITY, HIGHESTMODSEQ, count, last UID) → the columns views in that state share.
_SHARED: WeakValueDictionary[tuple[int, int, int, int], _Columns] = WeakValueDictionary()


class SelectedView:
    __slots__ = (
        "folder_id",
        "name",
        "readonly",
        "uidvalidity",
        "uidnext",
        "modseq",
        "uids",
        "flags",
        "kw",
        "modseqs",
        "kw_table",
        "_kw_ids",
        "recent",
        "gone",
        "exists_sent",
        "keywords_sent",
        "_shared",
    )

    def __init__(self, folder_id: int, name: str, readonly: bool, snapshot: SnapshotView) -> None:
        self._shared: _Columns | None = None  # set while the columns are shared: copy first
        self.folder_id = folder_id
        self.name = name
        self.readonly = readonly
        self.uidvalidity = snapshot.uidvalidity
        self.uidnext = snapshot.uidnext
        self.modseq = snapshot.highestmodseq  # HIGHESTMODSEQ as of the last look at the store
        self.recent: list[tuple[int, int]] = []  # half-open UID ranges recent for this session
        self.gone: set[int] = set()  # expunged elsewhere, not announced yet
        adopted = _adoptable(snapshot)
        if adopted is not None:
            # The store's kept columns, adopted as shared ones (copied before the first change).
            self.uids, self.flags, self.modseqs, self.kw, self.kw_table = adopted
            self._kw_ids = {k: i for i, k in enumerate(self.kw_table)}
        else:
            self.uids = array("I", snapshot.uids)
            self.flags = bytearray(snapshot.flags)
            self.modseqs = array("Q", snapshot.modseqs)
            self.kw_table = [NO_KEYWORDS]
            self._kw_ids = {NO_KEYWORDS: 0}
            keywords = snapshot.keywords
            if any(keywords):
                self.kw = array("I", map(self._keyword_id, keywords))
            else:
                self.kw = array("I", bytes(4 * len(self.uids)))
        self.exists_sent = len(self.uids)  # what the client believes the count is
        self.keywords_sent = len(self.kw_table)
        self._share()

    def _share(self) -> None:
        """Use the columns of a view in the same state, or offer ours to the next one."""
        uids = self.uids
        key = (self.uidvalidity, self.modseq, len(uids), uids[-1] if uids else 0)
        found = _SHARED.get(key)
        if found is not None and found.same(self):
            self.uids, self.flags, self.kw = found.uids, found.flags, found.kw
            self.modseqs, self.kw_table = found.modseqs, found.kw_table
            self._kw_ids = {k: i for i, k in enumerate(found.kw_table)}
        else:
            found = _SHARED[key] = _Columns(self)
        self._shared = found

    def _own(self) -> None:
        """Before the first change: our own copy of the shared columns."""
        if self._shared is None:
            return
        self._shared = None
        self.uids = array("I", self.uids)
        self.flags = bytearray(self.flags)
        self.kw = array("I", self.kw)
        self.modseqs = array("Q", self.modseqs)
        self.kw_table = list(self.kw_table)

    def _keyword_id(self, keywords: tuple[str, ...]) -> int:
        found = self._kw_ids.get(keywords)
        if found is None:
            self._own()
            found = self._kw_ids[keywords] = len(self.kw_table)
            self.kw_table.append(keywords)
        return found

    def __len__(self) -> int:
        return len(self.uids)

    def position(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        return i if i < len(self.uids) and self.uids[i] == uid else None

    def uids_at(self, positions: Iterable[int]) -> list[int]:
        uids = self.uids
        return [uids[i] for i in positions]

    def keywords(self, i: int) -> tuple[str, ...]:
        return self.kw_table[self.kw[i]]

    def keywords_in_use(self) -> list[str]:
        """Every keyword this session has seen in the folder (for the FLAGS response)."""
        seen: dict[str, None] = {}
        for keywords in self.kw_table:
            seen.update(dict.fromkeys(keywords))
        return list(seen)

    def first_unseen(self) -> int | None:
        """Sequence number of the first message without \\Seen (RFC 3501 §7.1 UNSEEN)."""
        i = self.flags.translate(_UNSEEN_TABLE).find(1)
        return None if i == -1 else i + 1

    # ---- changes -------------------------------------------------------------------------------

    def update(self, i: int, flags: int, keywords: tuple[str, ...], modseq: int) -> bool:
        """Record a message's new state; True when its flags or keywords differ from before."""
        self._own()
        kw = self._keyword_id(keywords)
        differs = self.flags[i] != flags or self.kw[i] != kw
        self.flags[i] = flags & 0xFF
        self.kw[i] = kw
        if modseq > self.modseqs[i]:
            self.modseqs[i] = modseq
        return differs

    def add(self, uid: int, flags: int, keywords: tuple[str, ...], modseq: int) -> None:
        """A new message (its UID is above every UID in the view)."""
        self._own()
        self.uids.append(uid)
        self.flags.append(flags & 0xFF)
        self.kw.append(self._keyword_id(keywords))
        self.modseqs.append(modseq)
        if uid >= self.uidnext:
            self.uidnext = uid + 1

    def remove(self, positions: Sequence[int]) -> None:
        """Drop messages at these ascending positions (announced as expunged)."""
        if not positions:
            return
        if self._shared is not None:  # new columns below; the keyword table becomes ours
            self._shared = None
            self.kw_table = list(self.kw_table)
        drop = set(positions)
        self.gone.difference_update(self.uids[i] for i in positions)
        keep = [i for i in range(len(self.uids)) if i not in drop]
        self.uids = array("I", [self.uids[i] for i in keep])
        self.flags = bytearray(self.flags[i] for i in keep)
        self.kw = array("I", [self.kw[i] for i in keep])
        self.modseqs = array("Q", [self.modseqs[i] for i in keep])

    # ---- \Recent (RFC 3501 §2.3.2; IMAP4rev2 dropped it) -----------------------------------------

    def add_recent(self, first: int, end: int) -> None:
        if first < end:
            self.recent.append((first, end))

    def is_recent(self, uid: int) -> bool:
        return any(lo <= uid < hi for lo, hi in self.recent)

    def recent_count(self) -> int:
        uids = self.uids
        return sum(bisect_left(uids, hi) - bisect_left(uids, lo) for lo, hi in self.recent)

    # ---- responses -------------------------------------------------------------------------------

    def flag_names(self, i: int, with_recent: bool) -> tuple[str, ...]:
        names = SYSTEM_NAMES[self.flags[i]]
        keywords = self.kw_table[self.kw[i]]
        if keywords:
            names = names + keywords
        if with_recent and self.recent and self.is_recent(self.uids[i]):
            names = names + (RECENT,)
        return names

    def flags_item(self, i: int, with_recent: bool) -> bytes:
        return w.flag_list(self.flag_names(i, with_recent))

    def flags_getter(self, with_recent: bool) -> Callable[[int], bytes]:
        """`flags_item` for a long loop: each distinct combination is serialised once."""
        cache: dict[int, bytes] = {}
        recent = with_recent and bool(self.recent)

        def get(i: int) -> bytes:
            # The columns are read through `self`: a change replaces shared ones by a copy.
            key = self.flags[i] | self.kw[i] << 9
            if recent and self.is_recent(self.uids[i]):
                key |= 256
            found = cache.get(key)
            if found is None:
                found = cache[key] = w.flag_list(self.flag_names(i, with_recent))
            return found

        return get

    def flags_fetch(self, i: int, *, uid: bool, modseq: bool, flags: bool = True, with_recent: bool) -> bytes:
        """`* n FETCH (UID u FLAGS (…) MODSEQ (m))`: unsolicited flag updates and STORE answers."""
        parts: list[bytes] = []
        if uid:
            parts.append(b"UID %d" % self.uids[i])
        if flags:
            parts.append(b"FLAGS " + self.flags_item(i, with_recent))
        if modseq:
            parts.append(b"MODSEQ (%d)" % self.modseqs[i])
        return w.fetch_joined(i + 1, b" ".join(parts))
