"""Recent folder snapshots, kept in compact arrays so that a SELECT of an unchanged folder reads
one row of folder counters and no message rows.

A folder's message list changes only together with its HIGHESTMODSEQ: every delivery, STORE,
COPY, MOVE and expunge takes a new MODSEQ in the same transaction (RFC 7162 §3.1.1; see
allocate.py), and a folder made selectable again gets a new UIDVALIDITY. So a snapshot read at
(uidvalidity, uidnext, highestmodseq) is still exact whenever the folder row shows those three
values again, whichever process or server made the changes in between. Entries are bounded by
the total number of messages they hold (about 13 bytes each), least recently used first out.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from courriel.mailbox.model import FolderSnapshot

MAX_MESSAGES: Final = 500_000  # about 6.5 MB of arrays at most
State = tuple[int, int, int]  # (uidvalidity, uidnext, highestmodseq)


@dataclass(frozen=True, slots=True)
class _Entry:
    state: State
    uids: array[int]
    flags: bytes
    modseqs: array[int]
    keywords: dict[int, tuple[str, ...]]  # index -> keywords, for the few messages with any


class SnapshotCache:
    """Per MailboxDatabase object; every hit is checked against the folder row just read.
    Used from the read threads and the event loop at once, hence the lock."""

    def __init__(self, max_messages: int = MAX_MESSAGES) -> None:
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._held = 0
        self._max = max_messages
        self._lock = threading.Lock()

    def get(self, folder_id: int, state: State) -> FolderSnapshot | None:
        with self._lock:
            entry = self._entries.get(folder_id)
            if entry is None or entry.state != state:
                return None
            self._entries.move_to_end(folder_id)
        keywords: list[tuple[str, ...]] = [()] * len(entry.uids)
        for index, value in entry.keywords.items():
            keywords[index] = value
        return FolderSnapshot(
            folder_id, *state, entry.uids.tolist(), list(entry.flags), keywords, entry.modseqs.tolist()
        )

    def put(self, snapshot: FolderSnapshot) -> None:
        count = len(snapshot.uids)
        if count > self._max or max(snapshot.flags, default=0) > 0xFF:
            with self._lock:
                self._drop(snapshot.folder_id)
            return
        entry = _Entry(
            (snapshot.uidvalidity, snapshot.uidnext, snapshot.highestmodseq),
            array("q", snapshot.uids),
            bytes(snapshot.flags),
            array("q", snapshot.modseqs),
            {i: k for i, k in enumerate(snapshot.keywords) if k},
        )
        with self._lock:
            self._drop(snapshot.folder_id)
            self._entries[snapshot.folder_id] = entry
            self._held += count
            while self._held > self._max:
                self._drop(next(iter(self._entries)))

    def _drop(self, folder_id: int) -> None:
        entry = self._entries.pop(folder_id, None)
        if entry is not None:
            self._held -= len(entry.uids)
