"""The Inbox as a POP3 maildrop, over the mailbox store, and the maildrop lock.

RFC 1939 §8: the server locks the maildrop at login so that two sessions do not delete from
under each other; a second session is refused with [IN-USE] (RFC 2449 §8.1.2). The lock is
held in this process (`MaildropLocks`), which is exact because each mailbox database is active
on one Mailbox server and this back end is the only POP3 path to it: every Client Access front
end proxies to the server holding the database. Should POP3 ever run in several processes over
one database, the lock would have to move into the database (a row with an expiry).

IMAP clients are not locked out and may change the same Inbox meanwhile (as with Exchange and
Dovecot): a message expunged by IMAP after the snapshot is answered "-ERR" by RETR and TOP
(`read` returns None), and deleting at QUIT a message that is already gone is not an error.
"""

from __future__ import annotations

from collections.abc import Sequence

from courriel.mailbox.pop import parse_pop_key
from courriel.mailbox.store import MailboxDatabase
from courriel.proto.pop3 import DropEntry

INBOX = "INBOX"


class MaildropLocks:
    """Which maildrops (mailbox GUIDs) have a POP3 session in the TRANSACTION state."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    def acquire(self, guid: str) -> bool:
        if guid in self._held:
            return False
        self._held.add(guid)
        return True

    def release(self, guid: str) -> None:
        self._held.discard(guid)

    def held(self, guid: str) -> bool:
        return guid in self._held


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
