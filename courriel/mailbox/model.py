"""Values the mailbox store takes and returns: delivery requests and results, folder and message views.

Plain frozen dataclasses with slots: the transport, the IMAP4 engine and the POP3 engine read
them; nothing here touches SQL. Times are aware UTC datetimes; flags are the bitmask of flags.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from courriel.storage.blobs import BlobRef

DeliveryStatus = Literal["delivered", "duplicate", "quota_exceeded", "no_such_folder"]
FlagUpdate = tuple[int, int, tuple[str, ...], int]  # (uid, flags, keywords, modseq)


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def to_epoch(moment: datetime) -> int:
    """Aware datetimes are converted; naive ones are taken as UTC (python-ecosystem.md §6, pitfall 5)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """One copy of a message for one mailbox, as the transport's local delivery hands it over."""

    guid: str
    owner: str
    blob: BlobRef
    delivery_key: str  # unique per mailbox; a repeat is reported as "duplicate" and not stored
    internaldate: datetime
    folder: str = "INBOX"  # a folder name, or a special-use attribute such as "\\Junk"
    flags: int = 0
    keywords: tuple[str, ...] = ()
    prohibit_send_receive_quota: int | None = None  # bytes; None: no limit


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    status: DeliveryStatus
    folder_id: int | None = None
    uid: int | None = None
    modseq: int | None = None


@dataclass(frozen=True, slots=True)
class FolderInfo:
    """A folder as LIST, LIST-STATUS and STATUS need it (RFC 9051 §6.3.9, §6.3.11; RFC 5819)."""

    id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    subscribed: bool
    messages: int
    unseen: int
    deleted: int
    size: int
    has_children: bool
    noselect: bool
    builtin: bool


@dataclass(frozen=True, slots=True)
class FolderSnapshot:
    """A folder's whole state in UID order, read in one transaction: what SELECT starts from."""

    folder_id: int
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    # Lists, except in a kept snapshot handed to a reader that adopts its compact columns
    # (MailboxDatabase.kept_snapshot: arrays, a bytearray, snapshots.KeywordColumn).
    uids: Sequence[int]
    flags: Sequence[int]
    keywords: Sequence[tuple[str, ...]]
    modseqs: Sequence[int]


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in a folder after a MODSEQ (IDLE/NOOP updates, CHANGEDSINCE, QRESYNC)."""

    changed: list[FlagUpdate]  # new or modified messages, in UID order
    expunged: list[int]  # UIDs, ascending
    highestmodseq: int
    uidnext: int


@dataclass(frozen=True, slots=True)
class StoreResult:
    updated: list[FlagUpdate]  # messages whose flags changed, each with its new MODSEQ
    failed_unchanged_since: list[int]  # RFC 7162 §3.1.3 [MODIFIED]


@dataclass(frozen=True, slots=True)
class CopyResult:
    """RFC 4315 COPYUID: the destination's UIDVALIDITY and (source UID, new UID) pairs."""

    uidvalidity: int
    mapping: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MessageMeta:
    uid: int
    flags: int
    keywords: tuple[str, ...]
    modseq: int
    internaldate: datetime
    saved: datetime
    size: int
    digest: str
    envelope: str | None
    bodystructure: str | None
    headers: str | None
    text: str | None
    header: str | None = None  # the raw header block (Latin-1), when asked for


@dataclass(frozen=True, slots=True)
class MaildropEntry:
    """A POP3 maildrop line: RFC 1939 §7 UIDL unique-id, size, and where the bytes are."""

    key: str
    size: int
    digest: str
