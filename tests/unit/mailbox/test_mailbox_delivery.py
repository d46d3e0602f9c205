"""Local delivery: UIDs under concurrency, exactly-once delivery keys, quota, folder choice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from courriel.mailbox.flags import DELETED, SEEN
from courriel.mailbox.model import DeliveryResult
from courriel.mailbox.store import MailboxDatabase
from courriel.storage.blobs import BlobRef, BlobStore
from tests.unit.mailbox.mailbox_harness import GUID, OWNER, fill, message, request


async def test_first_delivery_creates_the_mailbox(store: MailboxDatabase) -> None:
    blob = await store.blobs.put(message(1))
    result = await store.deliver(request(blob, "k1"))
    assert (result.status, result.uid) == ("delivered", 1)
    inbox = await store.get_folder(GUID, "INBOX")
    assert inbox is not None and result.folder_id == inbox.id
    assert (inbox.messages, inbox.unseen, inbox.size, inbox.uidnext) == (1, 1, blob.size, 2)
    assert result.modseq == inbox.highestmodseq
    assert len(await store.list_folders(GUID)) == 6
    assert await store.mailbox_usage(GUID) == (blob.size, 1)
    (meta,) = await store.message_meta(inbox.id, [1])
    assert meta.digest == blob.digest and meta.size == blob.size
    assert await store.read_message(meta.digest) == message(1)


async def test_concurrent_deliveries_get_distinct_increasing_uids(store: MailboxDatabase) -> None:
    blobs = [await store.blobs.put(message(n)) for n in range(50)]
    results = await asyncio.gather(*(store.deliver(request(b, f"a{n}")) for n, b in enumerate(blobs)))
    uids = [r.uid for r in results]
    assert all(r.status == "delivered" for r in results)
    assert sorted(uids) == list(range(1, 51))  # type: ignore[type-var]
    inbox = await store.get_folder(GUID, "INBOX")
    assert inbox is not None and inbox.messages == 50 and inbox.uidnext == 51
    # Expunge the newest ones: their UIDs are never handed out again.
    await store.store_flags(inbox.id, list(range(40, 51)), "add", DELETED)
    assert await store.expunge(inbox.id) == list(range(40, 51))
    more = await asyncio.gather(*(store.deliver(request(b, f"b{n}")) for n, b in enumerate(blobs)))
    assert sorted(r.uid for r in more) == list(range(51, 101))  # type: ignore[type-var]
    snap = await store.snapshot(inbox.id)
    assert snap.uids == sorted(set(snap.uids)) and len(snap.uids) == 89


async def test_two_writers_on_one_database_never_share_a_uid(
    store: MailboxDatabase, db_url: str, tmp_path: Path, blobs: BlobStore
) -> None:
    """As two processes would: two stores, each with its own writer, on the same database."""
    other = await MailboxDatabase.open("DB01", db_url, tmp_path, blobs)
    try:
        await store.ensure_mailbox(GUID, OWNER)
        refs = [await blobs.put(message(n)) for n in range(60)]
        results = await asyncio.gather(
            *((store if n % 2 else other).deliver(request(ref, f"w{n}")) for n, ref in enumerate(refs))
        )
    finally:
        await other.close()
    uids = [r.uid for r in results]
    assert len(set(uids)) == 60 and all(r.status == "delivered" for r in results)
    assert await store.mailbox_usage(GUID) == (sum(r.size for r in refs), 60)


async def test_a_repeated_delivery_key_is_a_duplicate(store: MailboxDatabase) -> None:
    blob = await store.blobs.put(message(1))
    first = await store.deliver(request(blob, "queue-id-1:alice"))
    again = await store.deliver(request(blob, "queue-id-1:alice"))
    assert (first.status, again.status) == ("delivered", "duplicate")
    twice = await store.deliver_many([request(blob, "k2"), request(blob, "k2")])
    assert [r.status for r in twice] == ["delivered", "duplicate"]
    assert await store.mailbox_usage(GUID) == (2 * blob.size, 2)
    # The key outlives the message: an expunge before a redelivery must not let it in again.
    assert first.folder_id is not None and first.uid is not None
    await store.store_flags(first.folder_id, [first.uid], "add", DELETED)
    await store.expunge(first.folder_id)
    assert (await store.deliver(request(blob, "queue-id-1:alice"))).status == "duplicate"


async def test_quota_exceeded_writes_nothing(store: MailboxDatabase) -> None:
    small = await store.blobs.put(message(1, size=400))
    limit = 1000
    results = await store.deliver_many(
        [request(small, f"q{n}", prohibit_send_receive_quota=limit) for n in range(3)]
    )
    assert [r.status for r in results] == ["delivered", "delivered", "quota_exceeded"]
    assert await store.mailbox_usage(GUID) == (800, 2)
    refused = await store.deliver(request(small, "q9", prohibit_send_receive_quota=limit))
    assert refused.status == "quota_exceeded"
    inbox = await store.get_folder(GUID, "INBOX")
    assert inbox is not None and (inbox.messages, inbox.size, inbox.uidnext) == (2, 800, 3)
    # The refused message's key was released: once the quota is raised, the retry is delivered.
    retried = await store.deliver(request(small, "q9", prohibit_send_receive_quota=2000))
    assert retried.status == "delivered"
    # Exactly at the limit is allowed; one byte over is not.
    exact = await store.deliver(request(small, "q10", prohibit_send_receive_quota=1600))
    over = await store.deliver(request(await store.blobs.put(b"x"), "q11", prohibit_send_receive_quota=1600))
    assert (exact.status, over.status) == ("delivered", "quota_exceeded")


async def test_delivery_by_special_use_and_to_a_missing_folder(store: MailboxDatabase) -> None:
    blob = await store.blobs.put(message(1))
    junk = await store.deliver(request(blob, "j1", folder="\\junk"))
    folder = await store.get_folder(GUID, "Junk Email")
    assert folder is not None and junk.status == "delivered" and junk.folder_id == folder.id
    named = await store.deliver(request(blob, "j2", folder="Junk Email"))
    assert named.folder_id == folder.id and named.uid == 2
    for target in ("No Such Folder", "\\Archive", "\\Bogus", "a//b"):
        missing = await store.deliver(request(blob, f"x-{target}", folder=target))
        assert missing.status == "no_such_folder"
    assert await store.mailbox_usage(GUID) == (2 * blob.size, 2)
    await store.create_folder(GUID, "No Such Folder")
    assert (
        await store.deliver(request(blob, "x-No Such Folder", folder="No Such Folder"))
    ).status == "delivered"


async def test_flags_and_keywords_on_delivery(store: MailboxDatabase) -> None:
    blob = await store.blobs.put(message(1))
    result = await store.deliver(request(blob, "f1", flags=SEEN, keywords=("$Forwarded", "Work", "work")))
    assert result.folder_id is not None
    inbox = await store.get_folder(GUID, "INBOX")
    assert inbox is not None and inbox.unseen == 0 and inbox.messages == 1
    snap = await store.snapshot(result.folder_id)
    assert snap.flags == [SEEN] and snap.keywords == [("$Forwarded", "Work")]


async def test_deliveries_to_several_mailboxes_in_one_batch(store: MailboxDatabase) -> None:
    blob = await store.blobs.put(message(1))
    reqs = [request(blob, f"k{n}", guid=f"user-{n % 3}", owner=f"u{n % 3}@example.com") for n in range(9)]
    results = await store.deliver_many(reqs)
    assert all(r.status == "delivered" for r in results)
    for n in range(3):
        assert await store.mailbox_usage(f"user-{n}") == (3 * blob.size, 3)
        assert sorted(r.uid for i, r in enumerate(results) if i % 3 == n) == [1, 2, 3]  # type: ignore[type-var]


async def test_bulk_fill_keeps_counters_consistent(store: MailboxDatabase) -> None:
    results = await fill(store, 120)
    inbox = await store.get_folder(GUID, "INBOX")
    assert inbox is not None and inbox.messages == 120 and inbox.unseen == 120
    assert [r.modseq for r in results] == list(range(results[0].modseq or 0, (results[0].modseq or 0) + 120))
    meta = await store.message_meta(inbox.id, [r.uid for r in results if r.uid is not None])
    assert sum(m.size for m in meta) == inbox.size == (await store.mailbox_usage(GUID))[0]


async def test_a_broken_delivery_fails_alone(store: MailboxDatabase) -> None:
    """A unit that makes the database fail is retried alone; its neighbours in the batch commit."""
    good = [await store.blobs.put(message(n)) for n in range(8)]
    broken = BlobRef(None, 10)  # type: ignore[arg-type]  # a NOT NULL digest: the INSERT fails
    calls = [store.deliver(request(b, f"g{n}")) for n, b in enumerate(good)]
    calls.insert(4, store.deliver(request(broken, "bad")))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[4], IntegrityError)
    delivered = [r for i, r in enumerate(results) if i != 4]
    assert all(isinstance(r, DeliveryResult) and r.status == "delivered" for r in delivered)
    assert await store.mailbox_usage(GUID) == (sum(b.size for b in good), 8)
    # Nothing of the broken one stayed behind, not even its delivery key.
    assert (await store.deliver(request(good[0], "bad"))).status == "delivered"
