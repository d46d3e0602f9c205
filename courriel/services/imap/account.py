"""The IMAP backend `Account` over one mailbox of a `MailboxDatabase` (courriel.proto.imap.backend).

A thin adapter: the store's values (FolderInfo, FolderSnapshot, Changes, MessageMeta …) satisfy
the backend's view Protocols as they are, so nothing is copied. What it adds:
- the store's refusals become `BackendError`s with RFC 5530 response codes and the store's
  public text (never its detail): NONEXISTENT, TRYCREATE where RFC 9051 §6.3.12 and §6.4.7 want
  it (APPEND, COPY, MOVE), ALREADYEXISTS, CANNOT, USEATTR (RFC 6154 §3), OVERQUOTA (RFC 9208);
  a write refused by a move fence (courriel.mailbox.fence) is UNAVAILABLE: try again later;
- SEARCH criteria the store can answer in SQL (size and internal date, RFC 9051 §6.4.4) are
  translated to `courriel.mailbox.criteria`; BODY and TEXT go to the store's search over the
  decoded text it keeps per message (normalised here as search_text.py does for that text);
- \\Recent bookkeeping (RFC 3501 §2.3.2) in a per-process registry: the first session to learn
  of a message sees it as recent. A database is active on one server at a time (DESIGN.md §3),
  so one process is the right scope; after a restart, earlier mail is simply not recent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, ParamSpec, TypeVar

from courriel.core.errors import CourrielError
from courriel.mailbox import criteria
from courriel.mailbox.analysis import CacheEntry
from courriel.mailbox.errors import (
    FolderExists,
    FolderRefused,
    InvalidFolderName,
    NoSuchFolder,
    OverQuota,
    SpecialUseRefused,
)
from courriel.mailbox.fence import is_fenced
from courriel.mailbox.flags import FlagError
from courriel.mailbox.model import Changes, CopyResult, FolderInfo, FolderSnapshot, MessageMeta, StoreResult
from courriel.mailbox.notify import Subscription
from courriel.mailbox.store import MailboxDatabase
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap.backend import Analysis, BackendError, MetaView, StoreMode
from courriel.proto.imap.search_text import normalise
from courriel.proto.imap.searchkeys import DateKey, SearchKey, SizeKey, TextKey
from courriel.services.placement import FENCED_TEXT, Placement

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
_RELATIONS: dict[str, Literal["before", "on", "since"]] = {"BEFORE": "before", "ON": "on", "SINCE": "since"}


class RecentRegistry:
    """Per folder, the first UID no session has been told about yet."""

    def __init__(self) -> None:
        self._first: dict[tuple[str, int], int] = {}

    def claim(self, database: str, folder_id: int, uidnext: int, claim: bool) -> int:
        key = (database, folder_id)
        first = self._first.setdefault(key, uidnext)
        if claim and uidnext > first:
            self._first[key] = uidnext
        return min(first, uidnext)

    def forget(self, database: str) -> None:
        """The database was closed here (moved to another server)."""
        for key in [k for k in self._first if k[0] == database]:
            del self._first[key]


def _text(error: CourrielError) -> str:
    return error.public[:1].upper() + error.public[1:]


@contextmanager
def refusals(missing: str = rc.NONEXISTENT) -> Iterator[None]:
    """Map the store's refusals to `tag NO [code] text`."""
    try:
        yield
    except NoSuchFolder as e:
        raise BackendError(_text(e), missing) from None
    except FolderExists as e:
        raise BackendError(_text(e), rc.ALREADYEXISTS) from None
    except (FolderRefused, InvalidFolderName) as e:
        raise BackendError(_text(e), rc.CANNOT) from None
    except SpecialUseRefused as e:
        raise BackendError(_text(e), "USEATTR") from None
    except OverQuota as e:
        raise BackendError(_text(e), rc.OVERQUOTA) from None
    except FlagError:
        raise BackendError("Invalid or too many keywords", rc.LIMIT) from None
    except Exception as e:
        if is_fenced(e):  # RFC 5530 §3: a temporary failure, the client retries
            raise BackendError(FENCED_TEXT, rc.UNAVAILABLE) from None
        raise


Method = Callable[P, Coroutine[Any, Any, T]]


def _mapped(missing: str = rc.NONEXISTENT) -> Callable[[Method[P, T]], Method[P, T]]:
    def wrap(fn: Method[P, T]) -> Method[P, T]:
        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            with refusals(missing):
                return await fn(*args, **kwargs)

        return call

    return wrap


def to_criterion(key: SearchKey) -> criteria.Criterion | None:
    """The store's form of a SEARCH key it can answer, or None."""
    if isinstance(key, SizeKey):
        return criteria.Size(larger=key.size) if key.larger else criteria.Size(smaller=key.size)
    if isinstance(key, DateKey) and not key.sent:
        return criteria.Date(_RELATIONS[key.op], key.day)
    return None


class StoreAccount:
    """One logged-in user's mailbox (`guid`) in `db`. `placement`, when known, is where the
    session logged in: the service ends the session once the mailbox moved (placement.py)."""

    __slots__ = ("_db", "_guid", "placement", "_user", "_recent", "_on_release", "_looked_up")

    def __init__(
        self,
        db: MailboxDatabase,
        guid: str,
        user: str,
        recent: RecentRegistry,
        on_release: Callable[[], None],
        *,
        placement: Placement | None = None,
    ) -> None:
        self.placement = placement
        self._db = db
        self._guid = guid
        self._user = user
        self._recent = recent
        self._on_release: Callable[[], None] | None = on_release
        self._looked_up: tuple[FolderInfo, int] | None = None  # the last get_folder, for SELECT

    @property
    def user(self) -> str:
        return self._user

    # ---- folders -----------------------------------------------------------------------------

    async def list_folders(self) -> Sequence[FolderInfo]:
        return await self._db.list_folders(self._guid)

    async def list_subscriptions(self) -> Sequence[str]:
        return await self._db.list_subscriptions(self._guid)

    async def get_folder(self, name: str) -> FolderInfo | None:
        mark = self._db.publications
        found = await self._db.get_folder(self._guid, name)
        self._looked_up = (found, mark) if found is not None else None
        return found

    @_mapped()
    async def create_folder(self, name: str, special_use: str | None) -> None:
        await self._db.create_folder(self._guid, name, special_use)

    @_mapped()
    async def delete_folder(self, name: str) -> None:
        await self._db.delete_folder(self._guid, name)

    @_mapped()
    async def rename_folder(self, old: str, new: str) -> None:
        await self._db.rename_folder(self._guid, old, new)

    @_mapped()
    async def subscribe(self, name: str, on: bool) -> None:
        await self._db.subscribe(self._guid, name, on)

    # ---- reading -----------------------------------------------------------------------------

    @_mapped()
    async def snapshot(self, folder_id: int) -> FolderSnapshot:
        """SELECT looks the folder up, sets its watch, then asks for the snapshot. When nothing
        was announced in this process since the lookup began, the folder row it read is still
        the truth here, and a snapshot kept for that state needs no second read. A change made
        by another process in between is not lost: the change feed and IDLE polls compare the
        folder's HIGHESTMODSEQ with the snapshot's."""
        looked_up, self._looked_up = self._looked_up, None
        if looked_up is not None:
            info, mark = looked_up
            if info.id == folder_id and mark == self._db.publications:
                kept = self._db.kept_snapshot(info)
                if kept is not None:
                    return kept
        return await self._db.snapshot(folder_id)

    @_mapped()
    async def changes_since(self, folder_id: int, modseq: int) -> Changes:
        return await self._db.changes_since(folder_id, modseq)

    async def highest_modseq(self, folder_id: int) -> int | None:
        return await self._db.change_counter(self._guid, folder_id)

    async def moved_away(self) -> bool:
        return await self._db.moved_away(self._guid)

    @_mapped()
    async def message_meta(
        self, folder_id: int, uids: Sequence[int], *, analysis: bool, text: bool, header: bool = False
    ) -> Sequence[MessageMeta]:
        return await self._db.message_meta(folder_id, uids, analysis=analysis, text=text, header=header)

    @_mapped()
    async def message_meta_and_bytes(
        self, folder_id: int, uids: Sequence[int], *, analysis: bool, byte_limit: int
    ) -> tuple[Sequence[MessageMeta], Mapping[str, bytes]]:
        return await self._db.message_meta_and_bytes(
            folder_id, uids, analysis=analysis, byte_limit=byte_limit
        )

    def bodies_now(
        self, folder_id: int, uids: Sequence[int]
    ) -> tuple[Sequence[MetaView], Mapping[str, bytes]] | None:
        return self._db.bodies_now(folder_id, uids)

    async def read_messages(self, digests: Sequence[str]) -> Mapping[str, bytes]:
        # One worker-thread hop for the whole group: file reads must not block the loop.
        return await self._db.blobs.get_many(digests)

    async def save_analysis(self, entries: Sequence[Analysis]) -> None:
        await self._db.set_cache_many(
            [CacheEntry(e.digest, e.envelope, e.bodystructure, e.headers, e.text) for e in entries]
        )

    @_mapped()
    async def search(self, folder_id: int, key: SearchKey) -> Sequence[int] | None:
        if isinstance(key, TextKey) and key.field in ("BODY", "TEXT"):
            return await self._db.search_text(folder_id, normalise(key.value), headers=key.field == "TEXT")
        where = to_criterion(key)
        return None if where is None else await self._db.search(folder_id, where)

    # ---- changing ------------------------------------------------------------------------------

    @_mapped()
    async def store_flags(
        self,
        folder_id: int,
        uids: Sequence[int],
        mode: StoreMode,
        flags: int,
        keywords: Sequence[str],
        unchanged_since: int | None,
    ) -> StoreResult:
        return await self._db.store_flags(folder_id, uids, mode, flags, keywords, unchanged_since)

    @_mapped(rc.TRYCREATE)
    async def append(
        self,
        folder: str,
        message: bytes,
        flags: int,
        keywords: Sequence[str],
        internal_date: datetime | None,
    ) -> tuple[int, int]:
        return await self._db.append(self._guid, folder, message, flags, keywords, internal_date)

    @_mapped(rc.TRYCREATE)
    async def copy(self, source: int, uids: Sequence[int], target: int) -> CopyResult:
        return await self._db.copy(source, uids, target)

    @_mapped(rc.TRYCREATE)
    async def move(self, source: int, uids: Sequence[int], target: int) -> CopyResult:
        return await self._db.move(source, uids, target)

    @_mapped()
    async def expunge(self, folder_id: int, uids: Sequence[int] | None) -> Sequence[int]:
        return await self._db.expunge(folder_id, uids)

    # ---- session bookkeeping ---------------------------------------------------------------------

    def watch(self, folder_id: int, wake: Callable[[], None]) -> Subscription:
        return self._db.subscribe_changes(self._guid, folder_id, lambda _change: wake())

    def claim_recent(self, folder_id: int, uidnext: int, claim: bool) -> int:
        return self._recent.claim(self._db.name, folder_id, uidnext, claim)

    def release(self) -> None:
        if self._on_release is not None:
            self._on_release()
            self._on_release = None
