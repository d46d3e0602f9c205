"""Moving a mailbox to another mailbox database while it stays in use (New-MoveRequest).

The copy runs in passes over the store's public calls, with the mailbox live in its source
database: the first pass copies every folder, message (flags, keywords, internal date, bytes
into the target's own blob store), subscription and exactly-once delivery key (with its time, so
that a retried delivery is still a duplicate in the target and the key ages out on schedule);
each later pass applies what changed since (CONDSTORE's MODSEQ: new and changed messages,
expunges, new, renamed and deleted folders; the keys recorded since). When a pass finds little
left, the final step fences the source (mailbox/fence.py: writes to it fail for a moment,
deliveries go back to the queue), copies the last changes, switches the recipient's database in
the directory, and removes the source copy with its keys. A failure before the switch lifts the
fence and leaves the source as it was; the target's partial copy is cleared by the next attempt.

Messages get new UIDs in the target, and each folder a new, greater UIDVALIDITY, so IMAP clients
resynchronise (RFC 9051 §2.3.1.1) rather than trust UIDs that changed meaning.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from courriel.core.errors import PermanentError
from courriel.mailbox.fence import LOCKED, MOVED, MoveFence
from courriel.mailbox.flags import DELETED
from courriel.mailbox.model import DeliveryRequest, FolderInfo
from courriel.mailbox.names import SEPARATOR
from courriel.mailbox.store import MailboxDatabase
from courriel.storage.blobs import WRITE_GRACE, BlobRef

log = logging.getLogger(__name__)
BATCH = 200  # messages per read and per placing transaction
MAX_PASSES = 10  # incremental passes before the final step, at most
SETTLED = 50  # a pass with no more changes than this is followed by the final step
Progress = Callable[[str], None]


@dataclass
class FolderMap:
    """What the target holds of one source folder."""

    target_id: int
    name: str
    uidvalidity: int  # the source's: a new value means the source's UIDs started over
    modseq: int = 0  # the source's HIGHESTMODSEQ copied so far
    uids: dict[int, int] = field(default_factory=dict)  # source UID → target UID


class MailboxCopy:
    """The passes of one move; `sync()` brings the target up to the source and counts changes.

    Delivery keys recorded before `keys_since` are not copied: the Mailbox role prunes them anyway.
    """

    def __init__(
        self,
        source: MailboxDatabase,
        target: MailboxDatabase,
        guid: str,
        owner: str,
        progress: Progress,
        *,
        keys_since: datetime | None = None,
    ) -> None:
        self.source, self.target, self.guid, self.owner = source, target, guid, owner
        self.progress = progress
        self.keys_since = keys_since
        self.folders: dict[int, FolderMap] = {}
        self.keys: set[str] = set()  # delivery keys copied so far
        self.copied = 0
        self._run = uuid.uuid4().hex[:12]

    async def sync(self) -> int:
        changes = 0
        current = [f for f in await self.source.list_folders(self.guid) if not f.noselect]
        present = {f.id for f in current}
        for gone in [fid for fid in self.folders if fid not in present]:
            await self._drop_target(self.folders.pop(gone))
            changes += 1
        current.sort(key=lambda f: f.name)
        for folder in current:  # renames first: a new folder may take a renamed one's old name
            mapped = self.folders.get(folder.id)
            if mapped is not None and mapped.uidvalidity != folder.uidvalidity:
                await self._drop_target(self.folders.pop(folder.id))
            elif mapped is not None and mapped.name != folder.name:
                await self._rename(mapped.name, folder.name)
                changes += 1
        for folder in current:
            mapped = self.folders.get(folder.id)
            if mapped is None:
                changes += await self._copy_folder(folder)
            elif folder.highestmodseq > mapped.modseq:
                changes += await self._apply_changes(folder.id, mapped)
        changes += await self._sync_subscriptions()
        await self._sync_delivery_keys()
        return changes

    async def _rename(self, old: str, new: str) -> None:
        """RENAME in the target; like the source's, it renames the inferior folders too (RFC 3501 §6.3.5)."""
        await self.target.rename_folder(self.guid, old, new)
        for mapped in self.folders.values():
            if mapped.name == old or mapped.name.startswith(old + SEPARATOR):
                mapped.name = new + mapped.name[len(old) :]

    async def _drop_target(self, mapped: FolderMap) -> None:
        info = await self.target.get_folder_by_id(mapped.target_id)
        if info is None:
            return
        if info.builtin:  # a default folder stays; only its messages go
            uids = sorted(mapped.uids.values())
            if uids:
                await self._expunge_target(mapped.target_id, uids)
            return
        await self.target.delete_folder(self.guid, info.name)

    async def _target_folder(self, folder: FolderInfo) -> int:
        """The target folder for a source folder: the same name, with a fresh UIDVALIDITY."""
        existing = await self.target.get_folder(self.guid, folder.name)
        if existing is not None and existing.uidvalidity == folder.uidvalidity and not existing.builtin:
            # Same name and same UIDVALIDITY but other UIDs would mislead clients: start it again.
            await self.target.delete_folder(self.guid, existing.name)
            existing = None
        if existing is None or existing.noselect:
            existing = await self.target.create_folder(self.guid, folder.name, folder.special_use)
        return existing.id

    async def _copy_folder(self, folder: FolderInfo) -> int:
        snapshot = await self.source.snapshot(folder.id)
        mapped = FolderMap(await self._target_folder(folder), folder.name, snapshot.uidvalidity)
        mapped.modseq = snapshot.highestmodseq
        self.folders[folder.id] = mapped
        total = len(snapshot.uids)
        for start in range(0, total, BATCH):
            await self._copy_messages(folder.id, mapped, snapshot.uids[start : start + BATCH])
            self.progress(f"  {folder.name}: {min(start + BATCH, total)}/{total} messages")
        return total + 1

    async def _copy_messages(self, folder_id: int, mapped: FolderMap, uids: Sequence[int]) -> None:
        metas = await self.source.message_meta(folder_id, uids, analysis=False, text=False)
        requests = []
        for meta in metas:
            blob = BlobRef(meta.digest, meta.size)
            await self.target.blobs.copy_from(self.source.blobs, blob)
            requests.append(
                DeliveryRequest(
                    guid=self.guid,
                    owner=self.owner,
                    blob=blob,
                    delivery_key=f"move:{self._run}:{folder_id}:{meta.uid}",
                    internaldate=meta.internaldate,
                    folder=mapped.name,
                    flags=meta.flags,
                    keywords=meta.keywords,
                    prohibit_send_receive_quota=None,  # a move is not a delivery: no quota refusal
                )
            )
        if not requests:
            return
        results = await self.target.deliver_many(requests)
        for meta, result in zip(metas, results, strict=True):
            if result.status != "delivered" or result.uid is None:
                raise PermanentError(
                    f"copying message {meta.uid} of folder {mapped.name} failed: {result.status}"
                )
            mapped.uids[meta.uid] = result.uid
        self.copied += len(results)

    async def _apply_changes(self, folder_id: int, mapped: FolderMap) -> int:
        changes = await self.source.changes_since(folder_id, mapped.modseq)
        gone = [mapped.uids.pop(uid) for uid in changes.expunged if uid in mapped.uids]
        if gone:
            await self._expunge_target(mapped.target_id, gone)
        new: list[int] = []
        by_flags: dict[tuple[int, tuple[str, ...]], list[int]] = defaultdict(list)
        for uid, flags, keywords, _modseq in changes.changed:
            if uid in mapped.uids:
                by_flags[(flags, keywords)].append(mapped.uids[uid])
            else:
                new.append(uid)
        for (flags, keywords), targets in by_flags.items():
            await self.target.store_flags(mapped.target_id, targets, "replace", flags, keywords)
        for start in range(0, len(new), BATCH):
            await self._copy_messages(folder_id, mapped, new[start : start + BATCH])
        mapped.modseq = changes.highestmodseq
        return len(gone) + len(changes.changed)

    async def _expunge_target(self, target_id: int, uids: list[int]) -> None:
        await self.target.store_flags(target_id, uids, "add", DELETED)
        await self.target.expunge(target_id, uids)

    async def _sync_subscriptions(self) -> int:
        wanted = set(await self.source.list_subscriptions(self.guid))
        have = set(await self.target.list_subscriptions(self.guid))
        for name in sorted(wanted - have):
            await self.target.subscribe(self.guid, name, True)
        for name in sorted(have - wanted):
            await self.target.subscribe(self.guid, name, False)
        return len(wanted ^ have)

    async def _sync_delivery_keys(self) -> None:
        """Copy the keys recorded since the last pass. Every pass reads them all rather than those
        newer than a time: a key's time is its delivering server's clock when the delivery began,
        so a later commit can carry an earlier time. Not counted as changes: a key is one small row,
        as cheap to copy in the final step as before it."""
        recorded = await self.source.delivery_keys(self.guid, self.keys_since)
        new = {key: when for key, when in recorded.items() if key not in self.keys}
        if not new:
            return
        await self.target.record_delivery_keys(self.guid, new)
        self.keys.update(new)
        self.progress(f"  {len(new)} delivery key(s) copied")


@dataclass(frozen=True, slots=True)
class Side:
    """One end of a move: the open database and its fence."""

    db: MailboxDatabase
    fence: MoveFence


async def move_mailbox(
    source: Side,
    target: Side,
    guid: str,
    owner: str,
    *,
    switch: Callable[[], Awaitable[None]],
    quota: int | None,
    progress: Progress,
    max_passes: int = MAX_PASSES,
    keys_since: datetime | None = None,
) -> int:
    """Copy, fence, copy the rest, `switch` the directory, remove the source copy; returns the
    number of messages copied. `quota` is the ProhibitSendReceiveQuota the target records.
    `keys_since` is the start of the delivery keys' prune window: older keys are left behind
    (None: every key the source holds, which its Mailbox role prunes to that window hourly)."""
    if await source.fence.state(guid) is not None:  # the directory says the mailbox is here
        progress("lifting the fence an interrupted move left on the source")
        await source.fence.lift(guid)
    await target.fence.lift(guid)
    leftover = await target.fence.remove_mailbox(guid)  # from an earlier attempt that failed
    if leftover:
        progress(f"cleared {len(leftover)} message(s) left in the target by an earlier attempt")
    await target.db.ensure_mailbox(guid, owner)
    copy = MailboxCopy(source.db, target.db, guid, owner, progress, keys_since=keys_since)
    progress("copying the mailbox while it stays in use")
    changes = await copy.sync()
    for number in range(1, max_passes + 1):
        changes = await copy.sync()
        progress(f"pass {number}: {changes} change(s) since the last pass")
        if changes <= SETTLED:
            break
    progress("final step: holding writes to the source copy")
    await source.fence.raise_fence(guid, LOCKED)
    try:
        last = await copy.sync()
        progress(f"final pass: {last} change(s)")
        await switch()
    except BaseException:
        await source.fence.lift(guid)
        raise
    await source.fence.raise_fence(guid, MOVED)  # a tombstone: stale deliveries are turned back
    await target.db.set_quota(guid, quota)
    progress("switched; removing the source copy")
    digests = await source.fence.remove_mailbox(guid)
    still_used = await source.db.digests_in_use()
    if source.db.blobs.fallback is not None:  # a database's own store, never the server's shared one
        # Only bodies older than the write grace: one being delivered to another mailbox of
        # this database right now is not in `still_used` yet (the periodic collector takes the rest).
        await source.db.blobs.collect((d for d in digests if d not in still_used), time.time() - WRITE_GRACE)
    return copy.copied
