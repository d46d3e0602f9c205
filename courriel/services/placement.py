"""Where a logged-in session's mailbox lives, and whether it still lives there.

`courriel mailbox move` switches a mailbox's database in the directory and removes the source
copy; a database can also be dismounted here or moved to another server. A session opened
before that must end, so that its client reconnects and the front end routes it to the new
place (IMAP `BYE [UNAVAILABLE]`, POP3 `-ERR [SYS/TEMP]`). The back end hears of directory
changes only through its snapshot callable, so the check compares what the session logged in to
with the current snapshot and the databases mounted here: two dictionary lookups, cheap enough
for every command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from courriel.mailbox.store import MailboxDatabase
from courriel.org.snapshot import DirectorySnapshot

FENCED_TEXT = "Mailbox is being moved, try again later"

Databases = Callable[[str], MailboxDatabase | None]


@dataclass(frozen=True, slots=True)
class Placement:
    """The recipient, mailbox and database a session logged in to."""

    recipient_id: int
    guid: str
    database: str
    db: MailboxDatabase


class Placements:
    """Answers whether a session's mailbox has moved since it logged in."""

    def __init__(self, snapshot: Callable[[], DirectorySnapshot], databases: Databases) -> None:
        self._snapshot = snapshot
        self._databases = databases

    def moved(self, placement: Placement) -> bool:
        """True once the directory names another database (or mailbox) for the recipient, or
        the database is no longer the one mounted here under that name."""
        if self._databases(placement.database) is not placement.db:
            return True
        found = self._snapshot().recipient_by_id(placement.recipient_id)
        return (
            found is None
            or found.guid != placement.guid
            or found.database is None
            or found.database.casefold() != placement.database.casefold()
        )
