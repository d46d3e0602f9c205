"""Recent folder snapshots, kept in compact arrays so that a SELECT of an unchanged folder reads
one row of folder counters and no message rows.

A folder's message list changes only together with its HIGHESTMODSEQ: every delivery, STORE,
COPY, MOVE and expunge takes a new MODSEQ in the same transaction (RFC 7162 §3.1.1; see
allocate.py), and a folder made selectable again gets a new UIDVALIDITY. So a snapshot read at
(uidvalidity, uidnext, highestmodseq) is still exact whenever the folder row shows those three
values again, whichever process or server made the changes in between. Entries are bounded by
the total number of messages they hold (about 17 bytes each), least recently used first out.
They are kept in the IMAP view's own layout (`kept`), so that a SELECT adopts them
without a copy.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, overload

from courriel.mailbox.model import FolderSnapshot, MessageMeta

MAX_MESSAGES: Final = 500_000  # about 8.5 MB of arrays at most
State = tuple[int, int, int]  # (uidvalidity, uidnext, highestmodseq)


@dataclass(frozen=True, slots=True)
class _Entry:
    state: State
    uids: array[int]  # "I": IMAP UIDs are 32-bit
    flags: bytearray
    modseqs: array[int]  # "Q"
    keywords: KeywordColumn


class KeywordColumn(Sequence[tuple[str, ...]]):
    """Each message's keywords as an index (`ids`, array "I") into `table` (0: none): the IMAP
    view's own layout, which it adopts as it is."""

    __slots__ = ("ids", "table")

    def __init__(self, ids: array[int], table: tuple[tuple[str, ...], ...]) -> None:
        self.ids = ids
        self.table = table

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> tuple[str, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, ...]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, ...] | list[tuple[str, ...]]:
        if isinstance(index, slice):
            return [self.table[k] for k in self.ids[index]]
        return self.table[self.ids[index]]


class SnapshotCache:
    """Per MailboxDatabase object; every hit is checked against the folder row just read.
    Used from the read threads and the event loop at once, hence the lock."""

    def __init__(self, max_messages: int = MAX_MESSAGES) -> None:
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._held = 0
        self._max = max_messages
        self._lock = threading.Lock()

    def kept(self, folder_id: int, state: State) -> FolderSnapshot | None:
        """The kept snapshot with the cache's own columns (arrays, a bytearray and a
        KeywordColumn): for a reader that never changes them (IMAP SELECT adopts them)."""
        entry = self._entry(folder_id, state)
        if entry is None:
            return None
        return FolderSnapshot(folder_id, *state, entry.uids, entry.flags, entry.keywords, entry.modseqs)

    def get(self, folder_id: int, state: State) -> FolderSnapshot | None:
        """A snapshot of lists of its own when the kept one matches `state`."""
        entry = self._entry(folder_id, state)
        if entry is None:
            return None
        return FolderSnapshot(
            folder_id,
            *state,
            entry.uids.tolist(),
            list(entry.flags),
            list(entry.keywords),
            entry.modseqs.tolist(),
        )

    def _entry(self, folder_id: int, state: State) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(folder_id)
            if entry is None or entry.state != state:
                return None
            self._entries.move_to_end(folder_id)
            return entry

    def put(self, snapshot: FolderSnapshot) -> None:
        count = len(snapshot.uids)
        entry = None if count > self._max else _columns(snapshot)
        with self._lock:
            self._drop(snapshot.folder_id)
            if entry is None:
                return
            self._entries[snapshot.folder_id] = entry
            self._held += count
            while self._held > self._max:
                self._drop(next(iter(self._entries)))

    def _drop(self, folder_id: int) -> None:
        entry = self._entries.pop(folder_id, None)
        if entry is not None:
            self._held -= len(entry.uids)


def _columns(snapshot: FolderSnapshot) -> _Entry | None:
    """The compact form, or None when a value does not fit it."""
    try:
        flags = bytearray(snapshot.flags)
        uids = array("I", snapshot.uids)
        modseqs = array("Q", snapshot.modseqs)
    except (ValueError, OverflowError):
        return None
    table: dict[tuple[str, ...], int] = {(): 0}
    if any(snapshot.keywords):
        ids = array("I", [table.setdefault(k, len(table)) for k in snapshot.keywords])
    else:
        ids = array("I", bytes(4 * len(uids)))
    state = (snapshot.uidvalidity, snapshot.uidnext, snapshot.highestmodseq)
    return _Entry(state, uids, flags, modseqs, KeywordColumn(ids, tuple(table)))


MAX_KNOWN: Final = 20_000  # rows; about 350 bytes each, 7 MB at most per process


@dataclass(frozen=True, slots=True)
class KnownRow:
    """What never changes about a message of a folder: its bytes, their size, the internal
    date (a UID is never reused in a folder, and folder ids are never reused). The mutable
    rest (flags, MODSEQ) is the session's view; the analysis columns are read when asked."""

    uid: int
    internaldate: datetime
    size: int
    digest: str
    envelope: None = None
    bodystructure: None = None
    headers: None = None
    text: None = None
    header: None = None


class KnownRows:
    """Rows seen by metadata reads, by folder, so that a FETCH of a few bodies the client
    listed before needs no query (store.py `bodies_now`). Bounded by `max_rows`, the least
    recently used folder first out; used on the event loop's thread only."""

    def __init__(self, max_rows: int = MAX_KNOWN) -> None:
        self._folders: OrderedDict[int, dict[int, KnownRow]] = OrderedDict()
        self._held = 0
        self._max = max_rows

    def learn(self, folder_id: int, rows: Iterable[MessageMeta]) -> None:
        known = self._folders.get(folder_id)
        if known is None:
            known = self._folders[folder_id] = {}
        else:
            self._folders.move_to_end(folder_id)
        before = len(known)
        for r in rows:
            if r.uid not in known:
                known[r.uid] = KnownRow(r.uid, r.internaldate, r.size, r.digest)
        self._held += len(known) - before
        while self._held > self._max and self._folders:
            _, dropped = self._folders.popitem(last=False)
            self._held -= len(dropped)

    def rows(self, folder_id: int, uids: Sequence[int]) -> list[KnownRow] | None:
        """The rows of all these UIDs, or None when one is unknown."""
        known = self._folders.get(folder_id)
        if known is None:
            return None
        try:
            return [known[uid] for uid in uids]
        except KeyError:
            return None
