"""Placing new messages in folders: local delivery from the transport (hot path) and IMAP APPEND.

One placement of n messages costs a fixed handful of statements, whatever n is: a multi-row
insert of the delivery keys (exactly-once: a key already there means a redelivery after a
crash, reported as "duplicate"), one quota-checked UPDATE per mailbox, one UID/MODSEQ
allocation per folder (allocate.py) and one multi-row insert of the messages. Concurrent
`deliver` calls are coalesced by DeliveryQueue into one placement, which the group committer
then commits with one flush (DESIGN.md §4). The messages' IMAP analysis (analysis.py) goes in
with them. Refusals undo exactly what they did (the delivery key, the mailbox charge), so a
refused message leaves nothing behind. A mailbox move carries the keys to the new database
(`delivery_keys`, `record_delivery_keys`), so a retry after the move is still a "duplicate".
Lock order on PostgreSQL: mailboxes in GUID order, then folders, as in every other write; the
delivery keys come first, but only a second delivery of the same message contends for one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.mailbox import quota
from courriel.mailbox.allocate import Delta, allocate
from courriel.mailbox.analysis import CacheEntry
from courriel.mailbox.database import Database
from courriel.mailbox.errors import InvalidFolderName, SpecialUseRefused
from courriel.mailbox.folders import by_selector, ensure_mailbox
from courriel.mailbox.model import DeliveryStatus
from courriel.mailbox.schema import analysis, deliveries, dialect_insert, messages
from courriel.mailbox.uidset import chunks
from courriel.storage.blobs import BlobRef

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Placement:
    """One message for one folder. `owner` set: create the mailbox if it does not exist yet."""

    guid: str
    folder: str  # a name, or a special-use attribute
    blob: BlobRef
    internaldate: int
    flags: int
    keywords: str  # joined, normalized
    delivery_key: str | None
    limit: quota.QuotaLimit
    record_limit: bool
    owner: str | None = None
    analysis: CacheEntry | None = None  # stored with the message when it is delivered (analysis.py)


@dataclass(frozen=True, slots=True)
class Placed:
    status: DeliveryStatus | None  # None: the mailbox does not exist (APPEND only)
    folder_id: int | None = None
    uidvalidity: int | None = None
    uid: int | None = None
    modseq: int | None = None


DUPLICATE = Placed("duplicate")
OVER_QUOTA = Placed("quota_exceeded")
NO_FOLDER = Placed("no_such_folder")
NO_MAILBOX = Placed(None)


async def place(conn: AsyncConnection, items: Sequence[Placement], now: int) -> list[Placed]:
    """Store the messages in one transaction; results in the order of `items`."""
    results: list[Placed | None] = [None] * len(items)
    claimed = await _claim_keys(conn, items, results, now)
    by_mailbox: dict[str, list[int]] = defaultdict(list)
    for index, result in enumerate(results):
        if result is None:
            by_mailbox[items[index].guid].append(index)
    by_folder: dict[tuple[str, str], list[int]] = defaultdict(list)
    for guid in sorted(by_mailbox):  # one lock order for every writer
        group = by_mailbox[guid]
        charged = await _charge(conn, guid, [items[i] for i in group], now)
        for index, ok in zip(group, charged, strict=True):
            if ok is None:
                results[index] = NO_MAILBOX
            elif ok:
                by_folder[(guid, items[index].folder)].append(index)
            else:
                results[index] = OVER_QUOTA
    rows: list[dict[str, Any]] = []
    for (guid, folder), group in sorted(by_folder.items()):
        placed = await _file(conn, guid, folder, [items[i] for i in group], now, rows)
        for index, result in zip(group, placed, strict=True):
            results[index] = result
    if rows:
        await conn.execute(insert(messages), rows)
    final = [r if r is not None else NO_MAILBOX for r in results]
    await _store_analysis(conn, items, final, now)
    await _release_keys(conn, items, final, claimed)
    return final


async def _file(
    conn: AsyncConnection,
    guid: str,
    folder: str,
    group: list[Placement],
    now: int,
    rows: list[dict[str, Any]],
) -> list[Placed]:
    """Take UIDs and MODSEQs for the group in its folder and add its message rows to `rows`."""
    delta = Delta()
    for item in group:
        delta.count(item.flags, item.blob.size)
    try:
        where = by_selector(guid, folder)
    except (InvalidFolderName, SpecialUseRefused):
        where = None
    got = (
        await allocate(conn, where, uids=len(group), modseqs=len(group), delta=delta)
        if where is not None
        else None
    )
    if got is None:
        await quota.account(conn, guid, size=-delta.size, messages=-delta.messages)  # give the charge back
        return [NO_FOLDER] * len(group)
    placed = []
    for offset, item in enumerate(group):
        uid, modseq = got.first_uid + offset, got.first_modseq + offset
        placed.append(Placed("delivered", got.folder_id, got.uidvalidity, uid, modseq))
        rows.append(
            {
                "folder_id": got.folder_id,
                "uid": uid,
                "modseq": modseq,
                "flags": item.flags,
                "keywords": item.keywords,
                "internaldate": item.internaldate,
                "saved": now,
                "size": item.blob.size,
                "digest": item.blob.digest,
            }
        )
    return placed


async def _store_analysis(
    conn: AsyncConnection, items: Sequence[Placement], results: Sequence[Placed], now: int
) -> None:
    """The analysis of the delivered messages, unless their digest has one already."""
    fresh: dict[str, CacheEntry] = {}
    for item, result in zip(items, results, strict=True):
        if item.analysis is not None and result.status == "delivered":
            fresh[item.analysis.digest] = item.analysis
    if not fresh:
        return
    stmt = dialect_insert(conn, analysis).on_conflict_do_nothing(index_elements=["digest"])
    rows = [{**e.row(), "updated": now} for e in fresh.values()]
    for part in chunks(rows, 100):  # texts can be large: bounded statements
        await conn.execute(stmt, list(part))


async def _claim_keys(
    conn: AsyncConnection, items: Sequence[Placement], results: list[Placed | None], now: int
) -> set[tuple[str, str]]:
    """Insert the delivery keys; items whose key is already known become duplicates."""
    wanted: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        if item.delivery_key is None:
            continue
        key = (item.guid, item.delivery_key)
        if key in wanted:
            results[index] = DUPLICATE
        else:
            wanted[key] = index
    claimed: set[tuple[str, str]] = set()
    if wanted:
        # executemany with RETURNING: SQLAlchemy batches it into multi-row INSERTs ("insertmanyvalues")
        # from one compiled statement, whatever the batch size; conflicting keys return no row.
        stmt = (
            dialect_insert(conn, deliveries)
            .on_conflict_do_nothing(index_elements=["mailbox", "delivery_key"])
            .returning(deliveries.c.mailbox, deliveries.c.delivery_key)
        )
        params = [{"mailbox": guid, "delivery_key": key, "delivered": now} for guid, key in wanted]
        claimed.update((row[0], row[1]) for row in (await conn.execute(stmt, params)).all())
    for key, index in wanted.items():
        if key not in claimed:
            results[index] = DUPLICATE
    return claimed


async def _release_keys(
    conn: AsyncConnection, items: Sequence[Placement], results: list[Placed], claimed: set[tuple[str, str]]
) -> None:
    """Forget the keys of messages that were refused, so that a later retry is not a "duplicate"."""
    release: dict[str, list[str]] = defaultdict(list)
    for item, result in zip(items, results, strict=True):
        if (
            item.delivery_key is not None
            and result.status != "delivered"
            and (item.guid, item.delivery_key) in claimed
        ):
            release[item.guid].append(item.delivery_key)
    for guid, keys in release.items():
        for part in chunks(keys):
            await conn.execute(
                delete(deliveries).where(deliveries.c.mailbox == guid, deliveries.c.delivery_key.in_(part))
            )


async def delivery_keys(conn: AsyncConnection, guid: str, since: int) -> dict[str, int]:
    """The mailbox's delivery keys recorded at `since` (epoch seconds) or later, with their times."""
    rows = await conn.execute(
        select(deliveries.c.delivery_key, deliveries.c.delivered).where(
            deliveries.c.mailbox == guid, deliveries.c.delivered >= since
        )
    )
    return {key: int(delivered) for key, delivered in rows.all()}


async def record_delivery_keys(conn: AsyncConnection, guid: str, keys: Mapping[str, int]) -> None:
    """Add keys recorded elsewhere (key → time delivered), keeping their times; a key already here stays."""
    if not keys:
        return
    stmt = dialect_insert(conn, deliveries).on_conflict_do_nothing(index_elements=["mailbox", "delivery_key"])
    await conn.execute(
        stmt, [{"mailbox": guid, "delivery_key": key, "delivered": when} for key, when in keys.items()]
    )


async def _charge(conn: AsyncConnection, guid: str, group: list[Placement], now: int) -> list[bool | None]:
    """Charge the mailbox for each message under its quota: True charged, False over quota, None no mailbox."""
    first = group[0]
    uniform = all(item.limit == first.limit and item.record_limit == first.record_limit for item in group)
    total = sum(item.blob.size for item in group)

    async def charge_all() -> bool:
        return uniform and await quota.account(
            conn, guid, size=total, messages=len(group), limit=first.limit, record=first.record_limit
        )

    if await charge_all():
        return [True] * len(group)
    if not await quota.mailbox_exists(conn, guid):
        owner = next((item.owner for item in group if item.owner), None)
        if owner is None:
            return [None] * len(group)
        await ensure_mailbox(conn, guid, owner, now)
        if await charge_all():
            return [True] * len(group)
    if uniform and len(group) == 1:
        return [False]
    # Some do not fit: admit them one by one, in order, each under its own limit.
    return [
        await quota.account(
            conn, guid, size=item.blob.size, messages=1, limit=item.limit, record=item.record_limit
        )
        for item in group
    ]


class DeliveryQueue:
    """Coalesces concurrent deliveries into one placement per transaction (group commit)."""

    def __init__(self, db: Database, clock: Callable[[], float], *, max_batch: int = 512) -> None:
        self.db = db
        self.clock = clock
        self.max_batch = max_batch
        self._waiting: list[tuple[Placement, asyncio.Future[Placed]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: Placement) -> Placed:
        future: asyncio.Future[Placed] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=f"deliveries-{self.db.name}")
        return await future

    async def place_now(self, items: Sequence[Placement]) -> list[Placed]:
        """All of `items` in one transaction of their own making (deliver_many, APPEND)."""
        return await self.db.write(lambda conn: place(conn, items, int(self.clock())), isolate=False)

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Placement, asyncio.Future[Placed]]]) -> None:
        try:
            results = await self.place_now([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            # One bad delivery must not fail its neighbours: try each alone.
            log.warning(
                "%s: delivery batch of %d failed; retrying one by one",
                self.db.name,
                len(batch),
                exc_info=True,
            )
            for unit in batch:
                await self._commit([unit])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # the caller may have gone (cancelled); the delivery stands
                future.set_result(result)

    async def close(self) -> None:
        if self._flusher is not None:
            await self._flusher
