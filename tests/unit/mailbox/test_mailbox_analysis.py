"""IMAP analysis made at delivery, SEARCH BODY/TEXT in SQL, and the folder snapshot cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text as sql

from courriel.mailbox.analysis import CacheEntry
from courriel.mailbox.flags import DELETED, SEEN
from courriel.mailbox.model import FolderInfo, FolderSnapshot
from courriel.mailbox.snapshots import SnapshotCache
from courriel.mailbox.store import MailboxDatabase
from courriel.proto.imap.search_text import normalise
from courriel.proto.imap.session.analysis import analyse
from courriel.proto.imap.session.selected import SelectedView
from courriel.services.imap.account import RecentRegistry, StoreAccount
from courriel.storage.blobs import BlobStore
from courriel.storage.engine import open_engine
from tests.unit.mailbox.mailbox_harness import GUID, OWNER, WHEN, request

MEETING = (
    b"From: =?utf-8?q?Ren=C3=A9e?= <renee@example.com>\r\n"
    b"Subject: =?utf-8?b?UsOpdW5pb24=?=\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Le CAF=C3=89 de la Team   MEETING 100%_done\r\n"
)
OTHER = b"Subject: lunch\r\nFrom: bob@example.com\r\n\r\nNothing to see here\r\n"


async def inbox(store: MailboxDatabase) -> FolderInfo:
    info = await store.get_folder(GUID, "INBOX")
    assert info is not None
    return info


async def deliver(store: MailboxDatabase, *bodies: bytes) -> None:
    reqs = [request(await store.blobs.put(b), f"k{n}") for n, b in enumerate(bodies)]
    assert all(r.status == "delivered" for r in await store.deliver_many(reqs))


async def test_delivery_stores_the_imap_analysis_with_the_message(store: MailboxDatabase) -> None:
    await deliver(store, MEETING)
    blob = await store.blobs.put(OTHER)
    assert (await store.deliver(request(blob, "single"))).status == "delivered"
    uidvalidity, uid = await store.append(GUID, "INBOX", MEETING + b"appended")
    box = await inbox(store)
    metas = await store.message_meta(box.id, [1, 2, uid], header=True)
    for meta, data in zip(metas, (MEETING, OTHER, MEETING + b"appended"), strict=True):
        assert meta.header is not None and data.startswith(meta.header.encode("latin-1"))
        assert meta.header.endswith("\r\n\r\n") and data[len(meta.header) :].count(b"\r\n") == 1
        expected = analyse(meta.digest, data)
        assert (meta.envelope, meta.bodystructure, meta.headers, meta.text) == (
            expected.envelope,
            expected.bodystructure,
            expected.headers,
            expected.text,
        )


async def test_a_message_that_cannot_be_analysed_is_still_delivered(
    db_url: str, tmp_path: Path, blobs: BlobStore
) -> None:
    def broken(digest: str, data: bytes) -> CacheEntry:
        raise ValueError("parser bug")

    db = await MailboxDatabase.open("DB01", db_url, tmp_path, blobs, analyser=broken)
    try:
        await deliver(db, MEETING)
        box = await inbox(db)
        (meta,) = await db.message_meta(box.id, [1])
        assert meta.envelope is None and meta.text is None  # left to the IMAP engine's first use
        assert await db.search_text(box.id, "meeting", headers=True) is None
    finally:
        await db.close()


@pytest.mark.parametrize(
    ("needle", "headers", "expected"),
    [
        ("meeting", False, [1]),
        ("MEETING", False, [1]),  # case-insensitive (RFC 9051 §6.4.4)
        ("café de la team meeting", False, [1]),  # decoded quoted-printable, white space folded
        ("100%_done", False, [1]),  # LIKE wildcards are literal characters
        ("100%_don_", False, []),
        ("réunion", False, []),  # the subject is a header: BODY does not look there
        ("réunion", True, [1]),  # TEXT does, decoded from RFC 2047
        ("renée", True, [1]),
        ("nothing to see", True, [2]),
        ("absent", True, []),
    ],
)
async def test_search_text_runs_over_the_stored_decoded_text(
    store: MailboxDatabase, needle: str, headers: bool, expected: list[int]
) -> None:
    await deliver(store, MEETING, OTHER)
    box = await inbox(store)
    assert await store.search_text(box.id, normalise(needle), headers=headers) == expected


async def test_search_text_gives_up_while_a_message_has_no_stored_text(lazy_store: MailboxDatabase) -> None:
    await deliver(lazy_store, MEETING, OTHER)
    box = await inbox(lazy_store)
    assert await lazy_store.search_text(box.id, "meeting", headers=True) is None
    (first, second) = await lazy_store.message_meta(box.id, [1, 2])
    await lazy_store.set_cache(first.digest, headers="subject: x", text="a meeting")
    assert await lazy_store.search_text(box.id, "meeting", headers=True) is None  # the second has none
    await lazy_store.set_cache(second.digest, headers="subject: y", text="no")
    assert await lazy_store.search_text(box.id, "meeting", headers=True) == [1]


async def test_the_snapshot_cache_follows_changes_made_by_another_process(
    store: MailboxDatabase, db_url: str, tmp_path: Path, blobs: BlobStore
) -> None:
    """A second MailboxDatabase on the same database plays another worker or server: its
    changes never reach the first one's notifications, only the folder row."""
    await deliver(store, MEETING, OTHER)
    box = await inbox(store)
    first = await store.snapshot(box.id)
    assert await store.snapshot(box.id) == first
    other = await MailboxDatabase.open("DB01", db_url, tmp_path, blobs)
    try:
        await other.store_flags(box.id, [2], "add", SEEN | DELETED, ["$Work"])
        flagged = await store.snapshot(box.id)
        assert flagged.flags == [0, SEEN | DELETED] and flagged.keywords == [(), ("$Work",)]
        assert flagged.highestmodseq > first.highestmodseq
        blob = await other.blobs.put(b"Subject: three\r\n\r\nthree\r\n")
        await other.deliver(request(blob, "three", owner=OWNER, internaldate=WHEN))
        assert (await store.snapshot(box.id)).uids == [1, 2, 3]
        await other.expunge(box.id)
        after = await store.snapshot(box.id)
        assert after.uids == [1, 3] and after.keywords == [(), ()]
        assert await store.snapshot(box.id) == after
        await other.store_flags(box.id, [3], "add", SEEN)
        assert (await store.snapshot(box.id)).flags == [0, SEEN]
    finally:
        await other.close()


@pytest.mark.parametrize(
    "wanted",
    [
        [5],  # one UID
        list(range(3, 40)),  # one run
        [1, 2, 3, 10, 11, 30],  # a few ranges
        list(range(1, 150, 2)) + [150, 151, 152, 999],  # scattered: listed one by one
    ],
)
async def test_message_meta_reads_exactly_the_uids_asked_for(
    store: MailboxDatabase, wanted: list[int]
) -> None:
    reqs = [request(await store.blobs.put(b"Subject: %d\r\n\r\nx\r\n" % n), f"m{n}") for n in range(160)]
    assert all(r.status == "delivered" for r in await store.deliver_many(reqs))
    box = await inbox(store)
    for analysis, text in ((False, False), (True, False), (False, True)):
        metas = await store.message_meta(box.id, wanted[::-1], analysis=analysis, text=text)
        assert [m.uid for m in metas] == sorted(u for u in wanted if u <= 160)
        assert all((m.envelope is not None) == analysis and (m.text is not None) == text for m in metas)


async def test_the_header_block_column_is_added_to_an_older_database(
    db_url: str, tmp_path: Path, blobs: BlobStore
) -> None:
    """Schema step 2 on a database made before it (version 1, no column): added, then used."""
    db = await MailboxDatabase.open("DB01", db_url, tmp_path, blobs)
    await deliver(db, OTHER)
    await db.close()
    engine = open_engine(db_url, tmp_path)
    try:
        async with engine.begin() as conn:
            await conn.execute(sql("ALTER TABLE mbx_analysis DROP COLUMN header"))
            await conn.execute(sql("UPDATE schema_versions SET version = 1 WHERE component = 'mailbox'"))
    finally:
        await engine.dispose()
    db = await MailboxDatabase.open("DB01", db_url, tmp_path, blobs)
    if db_url.startswith("postgresql"):  # the searchable text is kept uncompressed there
        engine = open_engine(db_url, tmp_path)
        try:
            async with engine.connect() as conn:
                storage = await conn.scalar(
                    sql(
                        "SELECT attstorage FROM pg_attribute WHERE attrelid = 'mbx_analysis'::regclass AND attname = 'text'"
                    )
                )
        finally:
            await engine.dispose()
        assert storage in ("e", b"e")  # a "char": asyncpg gives bytes
    try:
        box = await inbox(db)
        (old,) = await db.message_meta(box.id, [1], header=True)
        assert old.header is None and old.envelope is not None  # earlier rows: read the bytes
        blob = await db.blobs.put(MEETING)
        await db.deliver(request(blob, "after"))
        (new,) = await db.message_meta(box.id, [2], header=True)
        assert new.header is not None and MEETING.startswith(new.header.encode("latin-1"))
    finally:
        await db.close()


async def test_select_reuses_the_kept_snapshot_only_while_nothing_was_announced(
    store: MailboxDatabase,
) -> None:
    """StoreAccount: SELECT's lookup then snapshot read the folder once, unless a change was
    announced in between (then the snapshot is read again and shows it)."""
    await deliver(store, MEETING)
    account = StoreAccount(store, GUID, OWNER, RecentRegistry(), lambda: None)
    info = await account.get_folder("INBOX")
    assert info is not None
    assert (await account.snapshot(info.id)).uids == [1]  # kept by this first read
    info = await account.get_folder("INBOX")
    assert info is not None
    kept = await account.snapshot(info.id)
    assert list(kept.uids) == [1] and list(kept.keywords) == [()]  # the cache's own columns
    info = await account.get_folder("INBOX")
    assert info is not None
    blob = await store.blobs.put(OTHER)
    await store.deliver(request(blob, "between"))  # committed and announced after the lookup
    fresh = await account.snapshot(info.id)
    assert fresh.uids == [1, 2] and fresh.highestmodseq > info.highestmodseq


def test_the_snapshot_cache_keeps_a_bounded_number_of_messages() -> None:
    def snap(folder_id: int, count: int, modseq: int = 5) -> FolderSnapshot:
        uids = list(range(1, count + 1))
        return FolderSnapshot(folder_id, 7, count + 1, modseq, uids, [SEEN] * count, [()] * count, uids)

    cache = SnapshotCache(max_messages=10)
    cache.put(snap(1, 4))
    cache.put(snap(2, 4))
    assert cache.get(1, (7, 5, 5)) == snap(1, 4)  # 1 is now the most recently used
    assert cache.get(1, (7, 5, 6)) is None  # another state: not this snapshot
    cache.put(snap(3, 4))  # 12 messages held: the least recently used folder (2) goes
    assert cache.get(2, (7, 5, 5)) is None and cache.get(3, (7, 5, 5)) == snap(3, 4)
    cache.put(snap(4, 11))  # larger than the whole budget: not kept
    assert cache.get(4, (7, 12, 5)) is None and cache.get(1, (7, 5, 5)) is not None


async def test_rows_and_bytes_come_together_within_the_byte_limit(store: MailboxDatabase) -> None:
    """message_meta_and_bytes: the rows of every UID asked, the bytes of the leading ones that
    fit the limit (always the first), and none of the search text."""
    await deliver(store, MEETING, OTHER, MEETING + b"again\r\n")
    box = await inbox(store)
    metas, bodies = await store.message_meta_and_bytes(box.id, [1, 2, 3], byte_limit=1)
    assert [m.uid for m in metas] == [1, 2, 3] and metas[0].text is None
    assert bodies == {metas[0].digest: MEETING}  # the first, though larger than the limit
    limit = len(MEETING) + len(OTHER)
    metas, bodies = await store.message_meta_and_bytes(box.id, [1, 2, 3], byte_limit=limit)
    assert bodies == {metas[0].digest: MEETING, metas[1].digest: OTHER}
    metas, bodies = await store.message_meta_and_bytes(box.id, [3, 9], byte_limit=limit)
    assert [m.uid for m in metas] == [3] and bodies == {metas[0].digest: MEETING + b"again\r\n"}


async def test_bodies_of_rows_read_before_come_at_once(store: MailboxDatabase) -> None:
    """bodies_now: None for a row never read; after a metadata read, the row and the bytes
    (from the OS file cache) without a query; None again for a UID it does not know."""
    await deliver(store, MEETING, OTHER)
    box = await inbox(store)
    assert store.bodies_now(box.id, [1]) is None
    metas = await store.message_meta(box.id, [1, 2], analysis=False, text=False)
    now = store.bodies_now(box.id, [2, 1])
    assert now is not None
    rows, bodies = now
    assert [(r.uid, r.digest, r.size) for r in rows] == [(m.uid, m.digest, m.size) for m in reversed(metas)]
    assert bodies == {metas[0].digest: MEETING, metas[1].digest: OTHER}
    assert store.bodies_now(box.id, [1, 3]) is None


def test_a_selected_view_adopts_the_kept_columns_and_copies_them_before_a_change() -> None:
    cache = SnapshotCache()
    cache.put(FolderSnapshot(1, 7, 4, 9, [1, 2, 3], [SEEN, 0, 0], [(), ("$Work",), ()], [5, 6, 7]))
    kept = cache.kept(1, (7, 4, 9))
    assert kept is not None
    view = SelectedView(1, "INBOX", False, kept)
    assert view.uids is kept.uids and view.keywords(1) == ("$Work",)
    view.update(0, 0, ("$Late",), 10)
    assert (view.flags[0], view.keywords(0), view.modseqs[0]) == (0, ("$Late",), 10)
    again = cache.get(1, (7, 4, 9))  # the cache's columns are as they were
    assert again == FolderSnapshot(1, 7, 4, 9, [1, 2, 3], [SEEN, 0, 0], [(), ("$Work",), ()], [5, 6, 7])
