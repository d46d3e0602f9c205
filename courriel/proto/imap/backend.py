"""What the IMAP session needs from the world: an authenticator and the logged-in user's mailbox.

The session engine (session/) is sans-I/O and may import only `courriel.core` (DESIGN.md §5), so
it talks to these `typing.Protocol`s rather than to `courriel.mailbox`; the IMAP service
(`courriel.services.imap`) implements them over `MailboxDatabase` and the directory, and the
session tests over an in-memory fake. The views are Protocols with read-only properties so that
the store's own frozen dataclasses (FolderInfo, FolderSnapshot, Changes, MessageMeta …) satisfy
them as they are: nothing is copied between the store and the session.

Conventions shared with the store:
- system flags are a bitmask (SEEN … DRAFT below, the values of `courriel.mailbox.flags`);
  `\\Recent` is per session (RFC 3501 §2.3.2) and never stored;
- every list of UIDs is ascending; a folder's MODSEQ grows with each change, expunges included
  (RFC 7162 §3.1.1), so an unchanged HIGHESTMODSEQ means nothing happened;
- cached analysis (ENVELOPE, BODYSTRUCTURE) is the wire form decoded as Latin-1, so 8-bit header
  bytes survive a text column unchanged, as is the raw header block `header`; `headers` and
  `text` are `search_text.searchable_text`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, Protocol

from courriel.proto.imap.searchkeys import SearchKey

SEEN: Final = 1
ANSWERED: Final = 2
FLAGGED: Final = 4
DELETED: Final = 8
DRAFT: Final = 16
SYSTEM_FLAGS: Final = (
    (SEEN, "\\Seen"),
    (ANSWERED, "\\Answered"),
    (FLAGGED, "\\Flagged"),
    (DELETED, "\\Deleted"),
    (DRAFT, "\\Draft"),
)

StoreMode = Literal["add", "remove", "replace"]
FlagUpdate = tuple[int, int, tuple[str, ...], int]
"""(uid, flags, keywords, modseq) of a message after a change."""


class BackendError(Exception):
    """A refusal the client may see: `tag NO [code] text` (RFC 9051 §7.1, RFC 5530 codes).

    `text` is safe for the wire; details belong in the log, never here."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """Why a login failed: AUTHENTICATIONFAILED for bad credentials (the text must not tell
    which part was wrong, RFC 9051 §11.3), LIMIT, UNAVAILABLE …"""

    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the session learnt from a message's bytes, to persist once per digest."""

    digest: str
    envelope: str | None = None
    bodystructure: str | None = None
    headers: str | None = None
    text: str | None = None


class FolderView(Protocol):
    """A folder as LIST, STATUS and SELECT see it (the store's FolderInfo)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def special_use(self) -> str | None: ...
    @property
    def uidvalidity(self) -> int: ...
    @property
    def uidnext(self) -> int: ...
    @property
    def highestmodseq(self) -> int: ...
    @property
    def subscribed(self) -> bool: ...
    @property
    def messages(self) -> int: ...
    @property
    def unseen(self) -> int: ...
    @property
    def deleted(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def has_children(self) -> bool: ...
    @property
    def noselect(self) -> bool: ...


class SnapshotView(Protocol):
    """A folder's whole state in UID order, read in one transaction (what SELECT starts from)."""

    @property
    def uidvalidity(self) -> int: ...
    @property
    def uidnext(self) -> int: ...
    @property
    def highestmodseq(self) -> int: ...
    @property
    def uids(self) -> Sequence[int]: ...
    @property
    def flags(self) -> Sequence[int]: ...
    @property
    def keywords(self) -> Sequence[tuple[str, ...]]: ...
    @property
    def modseqs(self) -> Sequence[int]: ...


class ChangesView(Protocol):
    """New or changed messages (UID order) and expunged UIDs after a MODSEQ."""

    @property
    def changed(self) -> Sequence[FlagUpdate]: ...
    @property
    def expunged(self) -> Sequence[int]: ...
    @property
    def highestmodseq(self) -> int: ...
    @property
    def uidnext(self) -> int: ...


class MetaView(Protocol):
    """One message's row: what FETCH needs beyond flags, without its bytes."""

    @property
    def uid(self) -> int: ...
    @property
    def internaldate(self) -> datetime: ...
    @property
    def size(self) -> int: ...
    @property
    def digest(self) -> str: ...
    @property
    def envelope(self) -> str | None: ...
    @property
    def bodystructure(self) -> str | None: ...
    @property
    def headers(self) -> str | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def header(self) -> str | None:
        """The raw header block (Latin-1), when asked for and kept by the store."""
        ...


class StoreResultView(Protocol):
    @property
    def updated(self) -> Sequence[FlagUpdate]: ...
    @property
    def failed_unchanged_since(self) -> Sequence[int]: ...


class CopyResultView(Protocol):
    """RFC 4315 COPYUID: the target's UIDVALIDITY and (source UID, new UID) pairs."""

    @property
    def uidvalidity(self) -> int: ...
    @property
    def mapping(self) -> Sequence[tuple[int, int]]: ...


class Watch(Protocol):
    def close(self) -> None: ...


class Account(Protocol):
    """The logged-in user's mailbox. Folder names are full "/"-separated Unicode paths.

    Methods raise `BackendError` for refusals (no such folder, exists, over quota …); anything
    else is a fault the session reports as [SERVERBUG] and logs.
    """

    @property
    def user(self) -> str: ...

    async def list_folders(self) -> Sequence[FolderView]: ...
    async def list_subscriptions(self) -> Sequence[str]: ...
    async def get_folder(self, name: str) -> FolderView | None: ...
    async def create_folder(self, name: str, special_use: str | None) -> None: ...
    async def delete_folder(self, name: str) -> None: ...
    async def rename_folder(self, old: str, new: str) -> None: ...
    async def subscribe(self, name: str, on: bool) -> None: ...

    async def snapshot(self, folder_id: int) -> SnapshotView: ...
    async def changes_since(self, folder_id: int, modseq: int) -> ChangesView: ...
    async def highest_modseq(self, folder_id: int) -> int | None:
        """A cheap poll; None once the folder is gone."""
        ...

    async def moved_away(self) -> bool:
        """Was the whole mailbox moved to another database (not just a folder deleted)?"""
        ...

    async def message_meta(
        self, folder_id: int, uids: Sequence[int], *, analysis: bool, text: bool, header: bool = False
    ) -> Sequence[MetaView]:
        """Rows of the UIDs that still exist, in UID order, in one query. `analysis` asks for
        the cached ENVELOPE/BODYSTRUCTURE, `text` for the searchable headers and text, `header`
        for the raw header block (None where the store has none: read the bytes then); a store
        may return more than asked, never less."""
        ...

    async def message_meta_and_bytes(
        self, folder_id: int, uids: Sequence[int], *, analysis: bool, byte_limit: int
    ) -> tuple[Sequence[MetaView], Mapping[str, bytes]]:
        """`message_meta` (no search text, no header block) and the bytes of the leading rows
        that fit in `byte_limit` (at least the first), read together: one round trip to the
        store for a FETCH of a message's body instead of two."""
        ...

    def bodies_now(
        self, folder_id: int, uids: Sequence[int]
    ) -> tuple[Sequence[MetaView], Mapping[str, bytes]] | None:
        """What `message_meta_and_bytes` would answer without analysis, when the store can
        answer at once, without waiting for anything (rows it has seen, bytes in memory or
        the OS file cache); None otherwise. The caller knows the UIDs still exist."""
        ...

    async def read_messages(self, digests: Sequence[str]) -> Mapping[str, bytes]:
        """The bytes of these messages, read together (one worker-thread hop, not one per
        message); a digest whose bytes cannot be read is left out."""
        ...

    async def save_analysis(self, entries: Sequence[Analysis]) -> None: ...

    async def search(self, folder_id: int, key: SearchKey) -> Sequence[int] | None:
        """UIDs matching `key` (SizeKey, DateKey on the internal date, TextKey …), or None
        when the store cannot answer this key and the session must evaluate it."""
        ...

    async def store_flags(
        self,
        folder_id: int,
        uids: Sequence[int],
        mode: StoreMode,
        flags: int,
        keywords: Sequence[str],
        unchanged_since: int | None,
    ) -> StoreResultView: ...

    async def append(
        self,
        folder: str,
        message: bytes,
        flags: int,
        keywords: Sequence[str],
        internal_date: datetime | None,
    ) -> tuple[int, int]:
        """(UIDVALIDITY, UID) of the new message, for APPENDUID (RFC 4315 §3)."""
        ...

    async def copy(self, source: int, uids: Sequence[int], target: int) -> CopyResultView: ...
    async def move(self, source: int, uids: Sequence[int], target: int) -> CopyResultView: ...
    async def expunge(self, folder_id: int, uids: Sequence[int] | None) -> Sequence[int]: ...

    def watch(self, folder_id: int, wake: Callable[[], None]) -> Watch:
        """Call `wake()` when a change to the folder is committed in this process."""
        ...

    def claim_recent(self, folder_id: int, uidnext: int, claim: bool) -> int:
        """\\Recent bookkeeping (RFC 3501 §2.3.2): the first UID that is recent for the caller;
        with `claim`, UIDs below `uidnext` stop being recent for every other session."""
        ...

    def release(self) -> None:
        """The session is over (counts against MaxConnectionsPerUser end here)."""
        ...


class Authenticator(Protocol):
    async def login(self, username: str, password: str, peer: str) -> Account | LoginRefused:
        """Check credentials for a client at address `peer`; throttling and delays are the
        authenticator's business, so a refusal may take seconds."""
        ...
