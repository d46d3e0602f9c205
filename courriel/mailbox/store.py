"""MailboxDatabase: the one object the transport, the IMAP4 engine and the POP3 engine talk to.

It ties the parts together: writes go through the group committer (database.py) and, once
committed, are announced to subscribers (notify.py); reads run on the read pool; message bytes
live in the blob store, content-addressed and shared with the transport queue (DESIGN.md §3).
Each method is a thin wrapper over the module that holds the logic (delivery, analysis, folders,
tree, messages, expunge, query, snapshots, pop, quota), so that the rules live in one place each.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.mailbox import criteria, delivery, expunge, fence, folders, messages, pop, query, quota, tree
from courriel.mailbox.allocate import by_id
from courriel.mailbox.analysis import Analyser, DeliveryAnalysis, imap_analysis
from courriel.mailbox.analysis import CacheEntry as CacheEntry  # re-exported: callers import it from here
from courriel.mailbox.database import Database
from courriel.mailbox.delivery import DeliveryQueue, Placed, Placement
from courriel.mailbox.errors import InvalidFolderName, NoSuchFolder, NoSuchMailbox, OverQuota
from courriel.mailbox.flags import ALL_SYSTEM, StoreMode, join_keywords, normalize_keywords
from courriel.mailbox.model import (
    Changes,
    CopyResult,
    DeliveryRequest,
    DeliveryResult,
    FolderInfo,
    FolderSnapshot,
    MaildropEntry,
    MessageMeta,
    StoreResult,
    to_epoch,
)
from courriel.mailbox.names import normalize_name
from courriel.mailbox.notify import (
    POLL_INTERVAL,
    Change,
    ChangeHub,
    FeedKey,
    Subscription,
    Target,
    wait_for_change,
)
from courriel.mailbox.snapshots import KnownRow, KnownRows, SnapshotCache
from courriel.mailbox.uidset import chunks
from courriel.storage.blobs import NOWAIT, BlobRef, BlobStore, CachedBlobs

T = TypeVar("T")
log = logging.getLogger(__name__)


class MailboxDatabase:
    """One mailbox database: SQL (SQLite file or PostgreSQL database) plus the blob store."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        clock: Callable[[], float],
        poll_interval: float,
        analyser: Analyser | None = imap_analysis,
    ) -> None:
        self._db = db
        self.blobs = blobs
        self._clock = clock
        self._poll_interval = poll_interval
        self._hub = ChangeHub()
        self._deliveries = DeliveryQueue(db, clock)
        self._snapshots = SnapshotCache()
        self._known = KnownRows()
        self._cached = CachedBlobs(self.blobs)
        self._publications = 0
        self._analysis = DeliveryAnalysis(analyser)

    @classmethod
    async def open(
        cls,
        name: str,
        url: str,
        base_dir: Path | None,
        blobs: BlobStore,
        *,
        clock: Callable[[], float] = time.time,
        poll_interval: float = POLL_INTERVAL,
        analyser: Analyser | None = imap_analysis,
    ) -> MailboxDatabase:
        """Open (creating or upgrading the schema) the database `name` at `url`. `analyser`
        makes each new message's IMAP analysis as it is stored (None: left to first use)."""
        return cls(await Database.open(name, url, base_dir), blobs, clock, poll_interval, analyser)

    async def close(self) -> None:
        await self._deliveries.close()
        await self._db.close()

    @property
    def name(self) -> str:
        return self._db.name

    def _now(self) -> int:
        return int(self._clock())

    def _publish(self, changes: Iterable[Change]) -> None:
        self._publications += 1
        self._hub.publish(changes)

    @property
    def publications(self) -> int:
        """How many times committed changes were announced in this process: unchanged between
        two readings, nothing committed here in between has been announced."""
        return self._publications

    async def _read(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self._db.read() as conn:
            return await fn(conn)

    async def _read_sync(self, fn: Callable[[Connection], T]) -> T:
        return await self._db.read_sync(fn)

    # mailboxes and quota

    async def ensure_mailbox(self, guid: str, owner: str) -> bool:
        """Create the mailbox with its default folders unless it exists; True if created."""
        created = await self._db.write(lambda c: folders.ensure_mailbox(c, guid, owner, self._now()))
        if created:
            self._publish([Change(guid, None, "folders")])
        return created

    async def set_quota(self, guid: str, quota_bytes: int | None) -> None:
        """Record the mailbox's ProhibitSendReceiveQuota (used by APPEND and COPY)."""
        if not await self._db.write(lambda c: quota.set_quota(c, guid, quota_bytes)):
            raise NoSuchMailbox("no such mailbox", f"mailbox {guid} is not in this database")

    async def mailbox_usage(self, guid: str) -> tuple[int, int]:
        """(bytes, messages) of the whole mailbox."""
        found = await self._read(lambda c: quota.usage(c, guid))
        if found is None:
            raise NoSuchMailbox("no such mailbox", f"mailbox {guid} is not in this database")
        return found

    # delivery and APPEND

    def _placement(self, req: DeliveryRequest, analysed: Mapping[str, CacheEntry]) -> Placement:
        return Placement(
            guid=req.guid,
            folder=req.folder,
            blob=req.blob,
            internaldate=to_epoch(req.internaldate),
            flags=req.flags & ALL_SYSTEM,
            keywords=join_keywords(normalize_keywords(req.keywords)),
            delivery_key=req.delivery_key,
            limit=req.prohibit_send_receive_quota,
            record_limit=True,
            owner=req.owner,
            analysis=analysed.get(req.blob.digest),
        )

    async def _analyse(self, refs: Sequence[BlobRef], data: bytes | None = None) -> dict[str, CacheEntry]:
        """The analysis of new messages (analysis.py); `data` is the bytes of a single `refs[0]`."""
        wanted = self._analysis.wanted(refs)
        if not wanted:
            return {}
        if data is not None:
            return await self._analysis.of({refs[0].digest: data})
        try:
            bodies = await self.blobs.get_many(wanted)
        except Exception:  # the delivery itself reports what is wrong with its blob
            log.warning("%s: could not read new messages for analysis", self.name, exc_info=True)
            return {}
        return await self._analysis.of(bodies)

    def _announce_placed(self, placed: Sequence[tuple[Placement, Placed]]) -> None:
        self._analysis.stored(
            [
                item.analysis.digest
                for item, p in placed
                if item.analysis is not None and p.status == "delivered"
            ]
        )
        new: dict[tuple[str, int], list[Placed]] = defaultdict(list)
        for item, result in placed:
            if result.status == "delivered" and result.folder_id is not None:
                new[(item.guid, result.folder_id)].append(result)
        self._publish(
            Change(
                guid,
                folder_id,
                "messages",
                max(p.modseq or 0 for p in group),
                tuple(p.uid or 0 for p in group),
            )
            for (guid, folder_id), group in new.items()
        )

    async def deliver(self, req: DeliveryRequest) -> DeliveryResult:
        """Local delivery of one message; coalesced with concurrent ones into one transaction."""
        item = self._placement(req, await self._analyse([req.blob]))
        placed = await self._deliveries.submit(item)
        self._announce_placed([(item, placed)])
        return _result(placed)

    async def deliver_many(self, reqs: Sequence[DeliveryRequest]) -> list[DeliveryResult]:
        """Several deliveries in one transaction; results in the same order."""
        analysed = await self._analyse([r.blob for r in reqs])
        items = [self._placement(r, analysed) for r in reqs]
        placed = await self._deliveries.place_now(items)
        self._announce_placed(list(zip(items, placed, strict=True)))
        return [_result(p) for p in placed]

    async def append(
        self,
        guid: str,
        folder_name: str,
        data: bytes | BlobRef,
        flags: int = 0,
        keywords: Sequence[str] = (),
        internaldate: datetime | None = None,
    ) -> tuple[int, int]:
        """IMAP APPEND (RFC 9051 §6.3.12); returns (UIDVALIDITY, UID) for APPENDUID (RFC 4315 §3)."""
        name = normalize_name(folder_name)
        blob = data if isinstance(data, BlobRef) else await self.blobs.put(data)
        analysed = await self._analyse([blob], None if isinstance(data, BlobRef) else data)
        item = Placement(
            guid=guid,
            folder=name,
            blob=blob,
            internaldate=self._now() if internaldate is None else to_epoch(internaldate),
            flags=flags & ALL_SYSTEM,
            keywords=join_keywords(normalize_keywords(keywords)),
            delivery_key=None,
            limit="stored",
            record_limit=False,
            analysis=analysed.get(blob.digest),
        )
        (placed,) = await self._deliveries.place_now([item])
        if placed.status is None:
            raise NoSuchMailbox("no such mailbox", f"mailbox {guid} is not in this database")
        if placed.status == "no_such_folder":
            raise NoSuchFolder("mailbox does not exist", f"folder {name!r} not in mailbox {guid}")
        if placed.status == "quota_exceeded":
            raise OverQuota("quota exceeded")
        self._announce_placed([(item, placed)])
        assert placed.uidvalidity is not None and placed.uid is not None
        return placed.uidvalidity, placed.uid

    # folders

    async def list_folders(self, guid: str) -> list[FolderInfo]:
        return await self._read_sync(lambda c: folders.list_folders(c, guid))

    async def list_subscriptions(self, guid: str) -> list[str]:
        """Subscribed names, including names with no folder (LSUB, LIST (SUBSCRIBED))."""
        return await self._read_sync(lambda c: folders.list_subscriptions(c, guid))

    async def get_folder(self, guid: str, name: str) -> FolderInfo | None:
        """The folder by name (INBOX case-insensitive); None if there is none or the name is invalid."""
        try:
            normalize_name(name)
        except InvalidFolderName:
            return None
        return await self._read_sync(lambda c: folders.folder_info_by_name(c, guid, name))

    async def get_folder_by_id(self, folder_id: int) -> FolderInfo | None:
        return await self._read_sync(lambda c: folders.folder_info(c, by_id(folder_id)))

    async def create_folder(self, guid: str, name: str, special_use: str | None = None) -> FolderInfo:
        """CREATE, with missing parents (RFC 3501 §6.3.3) and CREATE-SPECIAL-USE (RFC 6154 §3)."""
        folder_id = await self._db.write(
            lambda c: folders.create_folder(c, guid, name, special_use, self._now())
        )
        self._publish([Change(guid, None, "folders")])
        info = await self.get_folder_by_id(folder_id)
        if info is None:  # removed by another process in the meantime
            raise NoSuchFolder("mailbox does not exist", f"folder id {folder_id} vanished after CREATE")
        return info

    async def delete_folder(self, guid: str, name: str) -> None:
        await self._db.write(lambda c: tree.delete_folder(c, guid, name))
        self._publish([Change(guid, None, "folders")])

    async def rename_folder(self, guid: str, old: str, new: str) -> None:
        await self._db.write(lambda c: tree.rename_folder(c, guid, old, new, self._now()))
        self._publish([Change(guid, None, "folders")])

    async def subscribe(self, guid: str, name: str, on: bool = True) -> bool:
        """SUBSCRIBE (on) or UNSUBSCRIBE; True if the subscription list changed."""
        changed = await self._db.write(lambda c: folders.subscribe(c, guid, name, on))
        if changed:
            self._publish([Change(guid, None, "folders")])
        return changed

    # messages: reads

    def kept_snapshot(self, info: FolderInfo) -> FolderSnapshot | None:
        """The snapshot kept for the folder as `info` describes it, without reading anything;
        None when none is kept for that state. The caller must know `info` is still current,
        and must not change the columns (they are the cache's own: a SELECT adopts them)."""
        return self._snapshots.kept(info.id, (info.uidvalidity, info.uidnext, info.highestmodseq))

    async def snapshot(self, folder_id: int) -> FolderSnapshot:
        return await self._read_sync(lambda c: query.snapshot(c, folder_id, self._snapshots))

    async def changes_since(self, folder_id: int, modseq: int) -> Changes:
        return await self._read_sync(lambda c: query.changes_since(c, folder_id, modseq))

    async def message_meta(
        self,
        folder_id: int,
        uids: Sequence[int],
        *,
        analysis: bool = True,
        text: bool = True,
        header: bool = False,
    ) -> list[MessageMeta]:
        """Without `analysis` ENVELOPE and BODYSTRUCTURE are None; without `text` the searchable
        headers and text are; without `header` the header block is. Callers say what they read."""
        metas = await self._read_sync(
            lambda c: query.message_meta(
                c, folder_id, uids, analysis_columns=analysis, text=text, header_block=header
            )
        )
        self._known.learn(folder_id, metas)
        return metas

    async def message_meta_and_bytes(
        self,
        folder_id: int,
        uids: Sequence[int],
        *,
        analysis: bool = True,
        header: bool = False,
        byte_limit: int,
    ) -> tuple[list[MessageMeta], dict[str, bytes]]:
        """`message_meta` (without the search text) and the bytes of the leading messages that
        fit in `byte_limit` (the first one always), read together: on SQLite in one worker-thread
        hop, which is most of the time of a single-message FETCH. The caller reads the rest."""

        def leading(metas: list[MessageMeta]) -> list[str]:
            wanted: list[str] = []
            total = 0
            for meta in metas:
                if wanted and total + meta.size > byte_limit:
                    break
                wanted.append(meta.digest)
                total += meta.size
            return wanted

        def rows(c: Connection) -> list[MessageMeta]:
            return query.message_meta(
                c, folder_id, uids, analysis_columns=analysis, text=False, header_block=header
            )

        # PostgreSQL runs `rows` on the event loop's thread, and a store that is not plain
        # files has its own way to read: then the bytes are a second, ordinary read.
        if not self._db.threaded_reads or type(self.blobs).get_sync is not BlobStore.get_sync:
            metas = await self._read_sync(rows)
            self._known.learn(folder_id, metas)
            return metas, await self.blobs.get_many(leading(metas))

        def both(c: Connection) -> tuple[list[MessageMeta], dict[str, bytes]]:
            metas = rows(c)
            return metas, self.blobs.get_many_sync(leading(metas))

        metas, found = await self._read_sync(both)
        self._known.learn(folder_id, metas)
        return metas, found

    def bodies_now(
        self, folder_id: int, uids: Sequence[int]
    ) -> tuple[list[KnownRow], dict[str, bytes]] | None:
        """The rows and bytes of messages whose rows were read before (up to NOW_MAX_MESSAGES
        and NOW_MAX_BYTES), without a query or a thread hop, when the bytes are in the OS file
        cache: a client fetching the bodies it listed. None otherwise (then
        `message_meta_and_bytes`).

        The event loop never waits for the disk here: reads are RWF_NOWAIT (Linux), which fail
        instead of blocking when a page is not cached. A cached 14 KB body reads in about
        12 µs, where a hop to a read thread costs 60-70 µs and the metadata query 60 µs more.
        The caller must know the UIDs still exist (nothing was expunged since its view)."""
        if len(uids) > NOW_MAX_MESSAGES or not NOWAIT or type(self.blobs).get_sync is not BlobStore.get_sync:
            return None
        rows = self._known.rows(folder_id, uids)
        if rows is None or sum(r.size for r in rows) > NOW_MAX_BYTES:
            return None
        found: dict[str, bytes] = {}
        for r in rows:
            data = self._cached.get(r.digest, r.size)
            if data is None:
                return None
            found[r.digest] = data
        return rows, found

    async def read_message(self, digest: str) -> bytes:
        return await self.blobs.get(digest)

    async def search(self, folder_id: int, where: criteria.Criterion) -> list[int]:
        return await self._read_sync(lambda c: query.search(c, folder_id, where))

    async def search_text(self, folder_id: int, needle: str, *, headers: bool) -> list[int] | None:
        """SEARCH BODY (TEXT with `headers`) in the database, over the stored decoded text;
        `needle` is already normalised. None while some message has no stored text."""
        return await self._read_sync(lambda c: query.search_text(c, folder_id, needle, headers=headers))

    # messages: changes

    async def store_flags(
        self,
        folder_id: int,
        uids: Sequence[int],
        mode: StoreMode,
        flags: int,
        keywords: Sequence[str] = (),
        unchanged_since: int | None = None,
    ) -> StoreResult:
        """STORE / UID STORE; with `unchanged_since`, the CONDSTORE form (RFC 7162 §3.1.3)."""
        if mode not in ("add", "remove", "replace"):
            raise ValueError(f"unknown store mode {mode!r}")
        wanted = normalize_keywords(keywords)
        guid, result = await self._db.write(
            lambda c: messages.store_flags(
                c, folder_id, uids, mode, flags & ALL_SYSTEM, wanted, unchanged_since
            )
        )
        if result.updated:
            touched = tuple(update[0] for update in result.updated)
            self._publish([Change(guid, folder_id, "flags", result.updated[-1][3], touched)])
        return result

    def _announce_removal(self, removal: expunge.Removal) -> None:
        self._analysis.forget(removal.digests)  # their analysis rows may be gone (expunge.py)
        if removal.uids:
            self._publish(
                [Change(removal.guid, removal.folder_id, "expunge", removal.modseq, tuple(removal.uids))]
            )

    async def expunge(self, folder_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """EXPUNGE, or UID EXPUNGE with `uids`: removes messages flagged \\Deleted; returns their UIDs."""
        removal = await self._db.write(lambda c: expunge.expunge(c, folder_id, uids))
        self._announce_removal(removal)
        return removal.uids

    async def _copy(self, source: int, uids: Sequence[int], target: int, move: bool) -> CopyResult:
        guid, result, removal = await self._db.write(
            lambda c: messages.copy(c, source, uids, target, self._now(), move=move)
        )
        if result.mapping:
            new = tuple(dest for _, dest in result.mapping)
            self._publish([Change(guid, target, "messages", None, new)])
        if removal is not None:
            self._announce_removal(removal)
        return result

    async def copy(self, source: int, uids: Sequence[int], target: int) -> CopyResult:
        """COPY (RFC 9051 §6.4.7): flags and internal dates kept, blobs shared; COPYUID mapping."""
        return await self._copy(source, uids, target, move=False)

    async def move(self, source: int, uids: Sequence[int], target: int) -> CopyResult:
        """MOVE (RFC 6851): copy and expunge in one transaction."""
        return await self._copy(source, uids, target, move=True)

    async def set_cache(
        self,
        digest: str,
        *,
        envelope: str | None = None,
        bodystructure: str | None = None,
        headers: str | None = None,
        text: str | None = None,
        header: str | None = None,
    ) -> None:
        """Keep the IMAP engine's analysis of these bytes so each message is parsed once."""
        await self.set_cache_many([CacheEntry(digest, envelope, bodystructure, headers, text, header)])

    async def set_cache_many(self, entries: Sequence[CacheEntry]) -> None:
        rows = [e.row() for e in entries]
        if rows:
            await self._db.write(lambda c: messages.set_cache(c, rows, self._now()))

    # POP3

    async def pop_maildrop(self, guid: str) -> list[MaildropEntry]:
        return await self._read(lambda c: pop.maildrop(c, guid))

    async def pop_delete(self, guid: str, keys: Sequence[str]) -> None:
        """Remove the maildrop entries with these UIDL keys (POP3 UPDATE state)."""
        removal = await self._db.write(lambda c: pop.delete(c, guid, keys))
        self._announce_removal(removal)

    # notifications

    def subscribe_changes(self, guid: str, folder_id: int | None, target: Target) -> Subscription:
        """Hear of committed changes to the mailbox (or one folder) in this process; close() to stop."""
        return self._hub.subscribe(guid, folder_id, target)

    async def change_counter(self, guid: str, folder_id: int | None = None) -> int | None:
        """The folder's HIGHESTMODSEQ, or the mailbox's change counter; None if it does not exist."""
        return await self._read_sync(lambda c: query.change_counter(c, guid, folder_id))

    async def moved_away(self, guid: str) -> bool:
        """Was this mailbox moved out of this database (the tombstone of `mailbox move`)?"""
        async with self._db.read() as conn:
            return await fence.moved_away(conn, guid)

    async def change_counters(self, keys: Sequence[FeedKey]) -> dict[FeedKey, int | None]:
        """`change_counter` of each (guid, folder id), in one read (the change feed's poll)."""
        return await self._read_sync(lambda c: {key: query.change_counter(c, *key) for key in keys})

    async def wait_for_change(
        self, guid: str, folder_id: int | None, timeout: float, *, since: int | None = None
    ) -> bool:
        """Wait for a change (IDLE): in-process events, else polling the change counter.

        `since` is the counter value the caller has seen (a HIGHESTMODSEQ for a folder); by
        default, the value when the call starts. Returns False on timeout.
        """

        def counter() -> Awaitable[int | None]:
            return self.change_counter(guid, folder_id)

        return await wait_for_change(self._hub, guid, folder_id, timeout, counter, since, self._poll_interval)

    # maintenance

    async def digests_in_use(self) -> set[str]:
        return await self._read_sync(query.digests_in_use)

    async def prune_delivery_keys(self, older_than: datetime) -> int:
        """Forget exactly-once delivery keys older than the transport's longest retry."""
        cutoff = to_epoch(older_than)
        return await self._db.write(lambda c: messages.prune_delivery_keys(c, cutoff))

    async def delivery_keys(self, guid: str, since: datetime | None = None) -> dict[str, int]:
        """The mailbox's exactly-once delivery keys (key → epoch seconds it was delivered), only
        those recorded at `since` or later if given: what a mailbox move carries over."""
        cutoff = 0 if since is None else to_epoch(since)
        return await self._read(lambda c: delivery.delivery_keys(c, guid, cutoff))

    async def record_delivery_keys(self, guid: str, keys: Mapping[str, int]) -> None:
        """Add delivery keys another database recorded for the mailbox, keeping their times, in
        transactions of KEY_BATCH keys (deliveries share the group committer meanwhile)."""
        for part in chunks(list(keys.items()), KEY_BATCH):
            await self._db.write(partial(delivery.record_delivery_keys, guid=guid, keys=dict(part)))


# What `bodies_now` reads on the event loop at most: 500 cached bodies (3.9 MB) take about 6 ms
# there, CPU only, as answering them does, where the read thread takes 17 ms of GIL ping-pong.
NOW_MAX_MESSAGES = 500
NOW_MAX_BYTES = 4 * 1024 * 1024

KEY_BATCH = 1000  # delivery keys per transaction of `record_delivery_keys`


def _result(placed: Placed) -> DeliveryResult:
    assert placed.status is not None  # deliveries create missing mailboxes
    return DeliveryResult(placed.status, placed.folder_id, placed.uid, placed.modseq)
