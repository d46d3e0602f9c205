"""COPY/MOVE (COPYUID), EXPUNGE history for QRESYNC, APPEND, POP3 maildrops, cached analysis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from courriel.mailbox.errors import NoSuchFolder, NoSuchMailbox, OverQuota
from courriel.mailbox.flags import DELETED, FLAGGED, SEEN
from courriel.mailbox.model import FolderInfo
from courriel.mailbox.store import MailboxDatabase
from tests.unit.mailbox.mailbox_harness import GUID, OWNER, fill, message


async def folder(store: MailboxDatabase, name: str) -> FolderInfo:
    info = await store.get_folder(GUID, name)
    assert info is not None
    return info


async def test_copy_gives_new_uids_and_shares_the_blobs(store: MailboxDatabase) -> None:
    await fill(store, 4)
    inbox, dest = await folder(store, "INBOX"), await store.create_folder(GUID, "Saved")
    await store.store_flags(inbox.id, [2], "add", FLAGGED, ["$Work"])
    result = await store.copy(inbox.id, [2, 4, 77], dest.id)  # 77 does not exist: ignored
    assert result.uidvalidity == dest.uidvalidity
    assert result.mapping == [(2, 1), (4, 2)]
    again = await store.copy(inbox.id, [1], dest.id)
    assert again.mapping == [(1, 3)]
    src_meta = {m.uid: m for m in await store.message_meta(inbox.id, [1, 2, 4])}
    dst_meta = {m.uid: m for m in await store.message_meta(dest.id, [1, 2, 3])}
    for src_uid, dst_uid in result.mapping + again.mapping:
        s, d = src_meta[src_uid], dst_meta[dst_uid]
        assert (d.digest, d.flags, d.keywords, d.internaldate, d.size) == (
            s.digest,
            s.flags,
            s.keywords,
            s.internaldate,
            s.size,
        )
    assert len(store.blobs.digests()) == 4  # no bytes were copied
    after = await folder(store, "Saved")
    assert (after.messages, after.unseen, after.uidnext) == (3, 3, 4)
    assert await store.mailbox_usage(GUID) == (inbox.size + after.size, 7)
    assert (await folder(store, "INBOX")).messages == 4


async def test_move_is_copy_plus_expunge(store: MailboxDatabase) -> None:
    await fill(store, 5)
    inbox, dest = await folder(store, "INBOX"), await folder(store, "Deleted Items")
    usage = await store.mailbox_usage(GUID)
    mark = (await store.snapshot(inbox.id)).highestmodseq
    result = await store.move(inbox.id, [1, 3, 5], dest.id)
    assert result.mapping == [(1, 1), (3, 2), (5, 3)]
    assert (await store.snapshot(inbox.id)).uids == [2, 4]
    assert (await store.snapshot(dest.id)).uids == [1, 2, 3]
    changes = await store.changes_since(inbox.id, mark)
    assert changes.expunged == [1, 3, 5] and changes.changed == []
    assert await store.mailbox_usage(GUID) == usage  # within one mailbox the size does not change
    info = await folder(store, "INBOX")
    assert info.messages == 2 and info.size == usage[0] - (await folder(store, "Deleted Items")).size


async def test_copy_and_move_errors(store: MailboxDatabase) -> None:
    await fill(store, 2)
    inbox = await folder(store, "INBOX")
    with pytest.raises(NoSuchFolder):
        await store.copy(inbox.id, [1], 987654)
    await store.create_folder(GUID, "P/child")
    await store.delete_folder(GUID, "P")
    placeholder = await folder(store, "P")
    with pytest.raises(NoSuchFolder):
        await store.move(inbox.id, [1], placeholder.id)  # \Noselect holds no messages
    assert (await store.snapshot(inbox.id)).uids == [1, 2]
    empty = await store.copy(inbox.id, [50], (await folder(store, "Drafts")).id)
    assert empty.mapping == []


async def test_copy_respects_the_recorded_quota(store: MailboxDatabase) -> None:
    await fill(store, 2, size=500)
    await store.set_quota(GUID, 1500)
    inbox, dest = await folder(store, "INBOX"), await folder(store, "Drafts")
    with pytest.raises(OverQuota):
        await store.copy(inbox.id, [1, 2], dest.id)
    assert (await folder(store, "Drafts")).messages == 0
    assert (await store.move(inbox.id, [1, 2], dest.id)).mapping == [(1, 1), (2, 2)]  # a move adds nothing


async def test_expunge_only_deleted_and_records_history(store: MailboxDatabase) -> None:
    await fill(store, 6)
    inbox = await folder(store, "INBOX")
    await store.store_flags(inbox.id, [2, 3, 5], "add", DELETED)
    mark = (await store.snapshot(inbox.id)).highestmodseq
    assert await store.expunge(inbox.id, [3, 4, 5]) == [3, 5]  # UID EXPUNGE: only \Deleted in the set
    assert await store.expunge(inbox.id) == [2]
    assert await store.expunge(inbox.id) == []
    snap = await store.snapshot(inbox.id)
    assert snap.uids == [1, 4, 6] and snap.uidnext == 7
    changes = await store.changes_since(inbox.id, mark)
    assert changes.expunged == [2, 3, 5] and changes.highestmodseq == snap.highestmodseq
    only_last = await store.changes_since(inbox.id, snap.highestmodseq - 1)
    assert only_last.expunged == [2]  # each EXPUNGE took its own MODSEQ
    info = await folder(store, "INBOX")
    assert (info.messages, info.deleted, info.unseen) == (3, 0, 3)
    assert await store.mailbox_usage(GUID) == (info.size, 3)


async def test_append(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    when = datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
    drafts = await folder(store, "Drafts")
    uidvalidity, uid = await store.append(GUID, "Drafts", message(1), SEEN, ["$MDNSent"], when)
    assert (uidvalidity, uid) == (drafts.uidvalidity, 1)
    (meta,) = await store.message_meta(drafts.id, [1])
    assert (meta.flags, meta.keywords, meta.internaldate) == (SEEN, ("$MDNSent",), when)
    assert await store.read_message(meta.digest) == message(1)
    ref = await store.blobs.put(message(2))
    assert (await store.append(GUID, "Drafts", ref))[1] == 2
    with pytest.raises(NoSuchFolder):
        await store.append(GUID, "Nowhere", message(3))
    with pytest.raises(NoSuchMailbox):
        await store.append("someone-else", "INBOX", message(3))
    await store.set_quota(GUID, (await store.mailbox_usage(GUID))[0] + 10)
    with pytest.raises(OverQuota):
        await store.append(GUID, "INBOX", message(4))
    assert (await folder(store, "INBOX")).messages == 0


async def test_pop3_maildrop_and_delete(store: MailboxDatabase) -> None:
    await fill(store, 4)
    await store.create_folder(GUID, "Elsewhere")
    await fill(store, 2, folder="Elsewhere", prefix="e")
    drop = await store.pop_maildrop(GUID)
    assert len(drop) == 4 and len({e.key for e in drop}) == 4
    assert all(1 <= len(e.key) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in e.key) for e in drop)
    assert await store.read_message(drop[0].digest) == message(0) + b"m"
    inbox = await folder(store, "INBOX")
    mark = inbox.highestmodseq
    await store.pop_delete(GUID, [drop[0].key, drop[2].key, "junk", "1.2.3"])  # no \Deleted needed
    assert [e.key for e in await store.pop_maildrop(GUID)] == [drop[1].key, drop[3].key]
    assert (await store.changes_since(inbox.id, mark)).expunged == [1, 3]
    assert (await store.mailbox_usage(GUID))[1] == 4


async def test_cached_analysis_is_shared_by_copies_and_dropped_with_the_last_one(
    lazy_store: MailboxDatabase,
) -> None:
    store = lazy_store
    await fill(store, 2)
    inbox, dest = await folder(store, "INBOX"), await folder(store, "Drafts")
    (meta,) = await store.message_meta(inbox.id, [1])
    assert (meta.envelope, meta.bodystructure, meta.headers, meta.text) == (None, None, None, None)
    await store.set_cache(meta.digest, envelope='("env")', text="hello")
    await store.set_cache(meta.digest, bodystructure='("TEXT" "PLAIN")')  # None fields are kept
    await store.copy(inbox.id, [1], dest.id)
    (copied,) = await store.message_meta(dest.id, [1])
    assert (copied.envelope, copied.bodystructure, copied.text) == ('("env")', '("TEXT" "PLAIN")', "hello")
    for f in (inbox, dest):
        await store.store_flags(f.id, [1], "add", DELETED)
    await store.expunge(inbox.id)
    (still,) = await store.message_meta(dest.id, [1])
    assert still.envelope == '("env")'  # the copy still references the digest
    # Only the columns asked for: FETCH FLAGS reads none of the text; SEARCH reads headers and text.
    await store.set_cache(meta.digest, headers="Subject: x")
    (bare,) = await store.message_meta(dest.id, [1], analysis=False, text=False)
    assert (bare.envelope, bare.headers, bare.text, bare.digest) == (None, None, None, meta.digest)
    (searching,) = await store.message_meta(dest.id, [1], analysis=False, text=True)
    assert (searching.envelope, searching.headers, searching.text) == (None, "Subject: x", "hello")
    (fetching,) = await store.message_meta(dest.id, [1], analysis=True, text=False)
    assert (fetching.bodystructure, fetching.headers, fetching.text) == ('("TEXT" "PLAIN")', None, None)
    await store.expunge(dest.id)
    await store.append(GUID, "INBOX", await store.blobs.put(message(0) + b"m"))
    (fresh,) = await store.message_meta(inbox.id, [3])
    assert fresh.digest == meta.digest and fresh.envelope is None  # the cache row went with the last copy


async def test_digests_in_use_and_pruning_delivery_keys(store: MailboxDatabase) -> None:
    results = await fill(store, 3)
    metas = await store.message_meta(results[0].folder_id or 0, [1, 2, 3])
    assert await store.digests_in_use() == {m.digest for m in metas}
    assert await store.prune_delivery_keys(datetime(2000, 1, 1, tzinfo=UTC)) == 0
    assert await store.prune_delivery_keys(datetime(2999, 1, 1, tzinfo=UTC)) == 3
