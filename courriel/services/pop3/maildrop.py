"""The Inbox as a POP3 maildrop, over the mailbox store, and the maildrop lock.

RFC 1939 §8: the server locks the maildrop at login so that two sessions do not delete from
under each other; a second session is refused with [IN-USE] (RFC 2449 §8.1.2). Each mailbox
database is active on one Mailbox server and this back end is the only POP3 path to it (every
Client Access front end proxies to the server holding the database), but every worker process
of that server runs the back end: `MaildropLocks` takes an flock(2) on a file per mailbox in
the server's data directory, which every worker sees and the kernel releases when its holder
exits, however it exits, so a crashed worker never leaves a maildrop locked.

IMAP clients are not locked out and may change the same Inbox meanwhile (as with Exchange and
Dovecot): a message expunged by IMAP after the snapshot is answered "-ERR" by RETR and TOP
(`read` returns None), and deleting at QUIT a message that is already gone is not an error.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from courriel.mailbox.pop import parse_pop_key
from courriel.mailbox.store import MailboxDatabase
from courriel.proto.pop3 import DropEntry

INBOX = "INBOX"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")


class MaildropLocks:
    """Which maildrops (mailbox GUIDs) have a POP3 session in the TRANSACTION state: in this
    process, and with `folder`, in every process of the server (lock files there)."""

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder
        self._held: dict[str, int | None] = {}  # guid → the descriptor holding its flock

    def acquire(self, guid: str) -> bool:
        if guid in self._held:
            return False
        fd = None
        if self._folder is not None:
            self._folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._folder / _file_name(guid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another worker's session has it
                os.close(fd)
                return False
        self._held[guid] = fd
        return True

    def release(self, guid: str) -> None:
        """Closing the descriptor drops the flock; the file stays (unlinking would race)."""
        fd = self._held.pop(guid, None)
        if fd is not None:
            os.close(fd)

    def held(self, guid: str) -> bool:
        return guid in self._held


def _file_name(guid: str) -> str:
    if _PLAIN_NAME.fullmatch(guid):
        return f"{guid}.lock"
    return hashlib.sha256(guid.encode()).hexdigest() + ".lock"


class StoreMaildrop:
    """The session's maildrop: the Inbox listing at login, reads and deletions by UIDL key."""

    def __init__(
        self, db: MailboxDatabase, guid: str, folder_id: int, uidvalidity: int, entries: list[DropEntry]
    ) -> None:
        self._db = db
        self._guid = guid
        self._folder_id = folder_id
        self._uidvalidity = uidvalidity
        self._entries = entries

    @classmethod
    async def open(cls, db: MailboxDatabase, guid: str, owner: str) -> StoreMaildrop:
        """Snapshot the Inbox; a mailbox that never received mail is created empty first."""
        folder = await db.get_folder(guid, INBOX)
        if folder is None:
            await db.ensure_mailbox(guid, owner)
            folder = await db.get_folder(guid, INBOX)
            if folder is None:
                raise LookupError(f"mailbox {guid} has no Inbox after ensure_mailbox")
        listing = await db.pop_maildrop(guid)
        entries = [DropEntry(entry.key, entry.size) for entry in listing]
        return cls(db, guid, folder.id, folder.uidvalidity, entries)

    @property
    def entries(self) -> Sequence[DropEntry]:
        return self._entries

    async def read(self, key: str) -> bytes | None:
        """The message's bytes, or None when it left the Inbox since the snapshot."""
        validity, uid = parse_pop_key(key)
        if validity != self._uidvalidity:
            return None
        found = await self._db.message_meta(self._folder_id, [uid])
        if not found:
            return None
        try:
            return await self._db.read_message(found[0].digest)
        except FileNotFoundError:
            return None  # expunged and its blob collected between the two reads

    async def remove(self, keys: Sequence[str]) -> None:
        """RFC 1939 §6: remove the messages marked deleted; ones already gone are skipped."""
        if keys:
            await self._db.pop_delete(self._guid, keys)
