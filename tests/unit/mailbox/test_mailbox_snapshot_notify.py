"""Whole-folder snapshots at 10,000 messages, and change notifications (in-process and polled)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from courriel.mailbox.flags import DELETED, SEEN
from courriel.mailbox.notify import Change
from courriel.mailbox.store import MailboxDatabase
from courriel.storage.blobs import BlobStore
from tests.unit.mailbox.mailbox_harness import GUID, OWNER, message, request

BIG = 10_000


async def test_snapshot_of_ten_thousand_messages(store: MailboxDatabase, db_url: str) -> None:
    blob = await store.blobs.put(message(0))  # one blob shared by all rows: the test is about SQL
    for start in range(0, BIG, 2_500):
        reqs = [request(blob, f"n{n}", flags=SEEN if n % 3 == 0 else 0) for n in range(start, start + 2_500)]
        await store.deliver_many(reqs)
    inbox = await store.get_folder(GUID, "INBOX")
    assert inbox is not None
    await store.store_flags(inbox.id, [5, 6], "add", DELETED, ["$Junk"])
    await store.snapshot(inbox.id)  # warm the pool
    began = time.perf_counter()
    snap = await store.snapshot(inbox.id)
    elapsed = time.perf_counter() - began
    engine = db_url.split(":", 1)[0]
    print(f"\nsnapshot of {len(snap.uids)} messages on {engine}: {elapsed * 1000:.1f} ms")
    assert snap.uids == list(range(1, BIG + 1))
    assert (snap.uidnext, snap.uidvalidity) == (BIG + 1, inbox.uidvalidity)
    after = await store.get_folder(GUID, "INBOX")
    assert after is not None and snap.highestmodseq == after.highestmodseq == max(snap.modseqs)
    assert len(snap.flags) == len(snap.keywords) == len(snap.modseqs) == BIG
    assert snap.flags[4] == DELETED and snap.keywords[4] == ("$Junk",) and snap.keywords[7] == ()
    assert snap.flags[0] == SEEN and snap.flags[1] == 0  # messages 1, 4, 7 … were delivered \Seen
    assert after.unseen == sum(1 for f in snap.flags if not f & SEEN) and after.deleted == 2


async def test_snapshot_of_an_empty_folder(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    drafts = await store.get_folder(GUID, "Drafts")
    assert drafts is not None
    snap = await store.snapshot(drafts.id)
    assert (snap.uids, snap.flags, snap.keywords, snap.modseqs) == ([], [], [], [])
    assert (snap.uidvalidity, snap.uidnext, snap.highestmodseq) == (
        drafts.uidvalidity,
        1,
        drafts.highestmodseq,
    )


async def test_delivery_fires_notifications_after_commit(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    inbox = await store.get_folder(GUID, "INBOX")
    drafts = await store.get_folder(GUID, "Drafts")
    assert inbox is not None and drafts is not None
    heard: list[Change] = []
    queue: asyncio.Queue[Change] = asyncio.Queue()
    seen_in_db: list[int] = []

    def on_change(change: Change) -> None:
        heard.append(change)

    def check_committed(change: Change) -> None:
        # Fired after commit: a fresh reader already sees the message.
        seen_in_db.append(change.uids[0])

    everything = store.subscribe_changes(GUID, None, on_change)
    only_drafts = store.subscribe_changes(GUID, drafts.id, queue)
    with store.subscribe_changes(GUID, inbox.id, check_committed):
        result = await store.deliver(request(await store.blobs.put(message(1)), "n1"))
    assert seen_in_db == [result.uid]
    assert [(c.kind, c.folder_id, c.uids) for c in heard] == [("messages", inbox.id, (1,))]
    assert heard[0].modseq == result.modseq
    assert queue.empty()  # a delivery to INBOX does not wake a Drafts watcher
    await store.store_flags(inbox.id, [1], "add", DELETED)
    await store.expunge(inbox.id)
    await store.append(GUID, "Drafts", message(2))
    await store.create_folder(GUID, "New")
    assert [c.kind for c in heard] == ["messages", "flags", "expunge", "messages", "folders"]
    from_queue = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [(c.kind, c.folder_id) for c in from_queue] == [("messages", drafts.id), ("folders", None)]
    everything.close()
    only_drafts.close()
    await store.deliver(request(await store.blobs.put(message(3)), "n3"))
    assert len(heard) == 5 and queue.empty()


async def test_a_failing_callback_does_not_fail_the_delivery(store: MailboxDatabase) -> None:
    def broken(_change: Change) -> None:
        raise RuntimeError("subscriber bug")

    store.subscribe_changes(GUID, None, broken)
    result = await store.deliver(request(await store.blobs.put(message(1)), "n1"))
    assert result.status == "delivered"


async def test_wait_for_change_in_process(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    inbox = await store.get_folder(GUID, "INBOX")
    assert inbox is not None
    assert await store.wait_for_change(GUID, inbox.id, 0.1) is False
    waiter = asyncio.create_task(store.wait_for_change(GUID, inbox.id, 5))
    await asyncio.sleep(0.01)
    began = time.perf_counter()
    await store.deliver(request(await store.blobs.put(message(1)), "n1"))
    assert await asyncio.wait_for(waiter, 5) is True
    assert time.perf_counter() - began < 1
    # A change the caller has not seen yet (since=an older HIGHESTMODSEQ) returns at once.
    assert await store.wait_for_change(GUID, inbox.id, 5, since=inbox.highestmodseq) is True


async def test_wait_for_change_across_processes_by_polling(
    store: MailboxDatabase, db_url: str, tmp_path: Path, blobs: BlobStore
) -> None:
    """A second store on the same database stands for another process: it only sees the counters."""
    await store.ensure_mailbox(GUID, OWNER)
    inbox = await store.get_folder(GUID, "INBOX")
    assert inbox is not None
    other = await MailboxDatabase.open("DB01", db_url, tmp_path, blobs, poll_interval=0.05)
    try:
        folder_waiter = asyncio.create_task(other.wait_for_change(GUID, inbox.id, 5))
        mailbox_waiter = asyncio.create_task(other.wait_for_change(GUID, None, 5))
        await asyncio.sleep(0.1)
        assert not folder_waiter.done() and not mailbox_waiter.done()
        await store.deliver(request(await store.blobs.put(message(1)), "n1"))
        assert await asyncio.wait_for(folder_waiter, 5) is True
        assert await asyncio.wait_for(mailbox_waiter, 5) is True
        # A folder change is visible to a mailbox-wide waiter too (the change counter).
        mailbox_waiter = asyncio.create_task(other.wait_for_change(GUID, None, 5))
        await asyncio.sleep(0.1)
        await store.create_folder(GUID, "Elsewhere")
        assert await asyncio.wait_for(mailbox_waiter, 5) is True
        assert await other.wait_for_change(GUID, inbox.id, 0.2) is False
    finally:
        await other.close()
