"""The maildrop as the POP3 engine sees it: a snapshot taken at login, plus deletion marks.

RFC 1939 §5: messages are numbered from 1 when the maildrop is opened and keep their numbers
for the whole session; DELE only marks a message, RSET unmarks all, and marked messages are
left out of STAT and LIST and refused by every command that names them. Removal happens only
at QUIT, in the UPDATE state (RFC 1939 §6), through `DecideCommit`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class DropEntry:
    """One message: its unique id and its size in octets as sent (CRLF line endings)."""

    uid: str
    size: int

    def __post_init__(self) -> None:
        # RFC 1939 §7 (UIDL): 1 to 70 characters in the range 0x21 to 0x7E.
        if not 1 <= len(self.uid) <= 70 or not all("\x21" <= c <= "\x7e" for c in self.uid):
            raise ValueError(f"invalid POP3 unique id: {self.uid!r}")
        if self.size < 0:
            raise ValueError("message size must not be negative")


class Maildrop(Protocol):
    """What the store hands over at login; the engine keeps the deletion marks itself."""

    @property
    def entries(self) -> Sequence[DropEntry]: ...


class MarkedDrop:
    """The session's view: fixed message numbers and the set of messages marked deleted."""

    def __init__(self, entries: Sequence[DropEntry]) -> None:
        self._entries = tuple(entries)
        self._deleted: set[int] = set()

    def __len__(self) -> int:
        """The number of messages, marked ones included (the highest message number)."""
        return len(self._entries)

    def get(self, number: int) -> DropEntry | None:
        """The entry for a 1-based message number, or None when out of range."""
        if 1 <= number <= len(self._entries):
            return self._entries[number - 1]
        return None

    def is_deleted(self, number: int) -> bool:
        return number in self._deleted

    def mark(self, number: int) -> None:
        self._deleted.add(number)

    def unmark_all(self) -> None:
        self._deleted.clear()

    def live(self) -> Iterator[tuple[int, DropEntry]]:
        """(number, entry) for every message not marked deleted, in number order."""
        for index, entry in enumerate(self._entries, start=1):
            if index not in self._deleted:
                yield index, entry

    def totals(self) -> tuple[int, int]:
        """(count, octets) of the messages not marked deleted."""
        count = octets = 0
        for _, entry in self.live():
            count += 1
            octets += entry.size
        return count, octets

    def deleted_uids(self) -> list[str]:
        return [self._entries[n - 1].uid for n in sorted(self._deleted)]
