"""STORE: MODSEQ per changed message, no MODSEQ for no-ops, UNCHANGEDSINCE (RFC 7162 §3.1.3)."""

from __future__ import annotations

from courriel.mailbox.flags import ANSWERED, DELETED, FLAGGED, SEEN
from courriel.mailbox.store import MailboxDatabase
from tests.unit.mailbox.mailbox_harness import GUID, fill


async def inbox_id(store: MailboxDatabase) -> int:
    inbox = await store.get_folder(GUID, "INBOX")
    assert inbox is not None
    return inbox.id


async def test_each_changed_message_gets_a_new_modseq(store: MailboxDatabase) -> None:
    await fill(store, 5)
    folder = await inbox_id(store)
    before = await store.snapshot(folder)
    result = await store.store_flags(folder, [1, 2, 3], "add", SEEN | FLAGGED)
    assert [u[0] for u in result.updated] == [1, 2, 3]
    modseqs = [u[3] for u in result.updated]
    assert len(set(modseqs)) == 3 and min(modseqs) > before.highestmodseq
    after = await store.snapshot(folder)
    assert after.highestmodseq == max(modseqs)
    assert after.flags[:3] == [SEEN | FLAGGED] * 3 and after.flags[3:] == [0, 0]
    assert after.modseqs[3:] == before.modseqs[3:]
    info = await store.get_folder(GUID, "INBOX")
    assert info is not None and info.unseen == 2


async def test_a_store_that_changes_nothing_takes_no_modseq(store: MailboxDatabase) -> None:
    await fill(store, 3)
    folder = await inbox_id(store)
    await store.store_flags(folder, [1, 2], "add", SEEN)
    before = await store.snapshot(folder)
    result = await store.store_flags(folder, [1, 2, 3], "add", SEEN)
    assert [u[0] for u in result.updated] == [3]  # 1 and 2 were already \Seen
    after = await store.snapshot(folder)
    assert after.modseqs[:2] == before.modseqs[:2]
    assert after.highestmodseq == before.highestmodseq + 1
    assert (await store.store_flags(folder, [1], "remove", ANSWERED)).updated == []
    assert (await store.snapshot(folder)).highestmodseq == after.highestmodseq


async def test_modes_and_keywords(store: MailboxDatabase) -> None:
    await fill(store, 1)
    folder = await inbox_id(store)
    await store.store_flags(folder, [1], "replace", SEEN | ANSWERED, ["$Label1", "Todo"])
    await store.store_flags(folder, [1], "add", FLAGGED, ["todo", "$Junk"])  # "todo" is "Todo"
    snap = await store.snapshot(folder)
    assert snap.flags == [SEEN | ANSWERED | FLAGGED] and snap.keywords == [("$Junk", "$Label1", "Todo")]
    await store.store_flags(folder, [1], "remove", SEEN, ["TODO", "$label1"])
    snap = await store.snapshot(folder)
    assert snap.flags == [ANSWERED | FLAGGED] and snap.keywords == [("$Junk",)]
    await store.store_flags(folder, [1], "replace", 0)
    snap = await store.snapshot(folder)
    assert snap.flags == [0] and snap.keywords == [()]
    info = await store.get_folder(GUID, "INBOX")
    assert info is not None and info.unseen == 1


async def test_unchangedsince_refuses_messages_modified_since(store: MailboxDatabase) -> None:
    await fill(store, 4)
    folder = await inbox_id(store)
    seen_at = (await store.snapshot(folder)).highestmodseq
    await store.store_flags(folder, [2], "add", FLAGGED)  # another client changes message 2
    result = await store.store_flags(folder, [1, 2, 3], "add", DELETED, unchanged_since=seen_at)
    assert result.failed_unchanged_since == [2]
    assert [u[0] for u in result.updated] == [1, 3]
    snap = await store.snapshot(folder)
    assert snap.flags == [DELETED, FLAGGED, DELETED, 0]
    # UNCHANGEDSINCE 0 fails every message (RFC 7162 §3.1.3).
    zero = await store.store_flags(folder, [1, 4], "add", SEEN, unchanged_since=0)
    assert zero.failed_unchanged_since == [1, 4] and zero.updated == []
    info = await store.get_folder(GUID, "INBOX")
    assert info is not None and info.deleted == 2


async def test_unknown_uids_are_ignored_and_scattered_sets_work(store: MailboxDatabase) -> None:
    await fill(store, 300)
    folder = await inbox_id(store)
    odd = list(range(1, 301, 2)) + [999, 1000]  # 150 ranges: wider than one statement's conditions
    result = await store.store_flags(folder, odd, "add", SEEN)
    assert [u[0] for u in result.updated] == list(range(1, 301, 2))
    snap = await store.snapshot(folder)
    assert [uid for uid, f in zip(snap.uids, snap.flags, strict=True) if f & SEEN] == list(range(1, 301, 2))


async def test_changes_since_reports_flag_changes(store: MailboxDatabase) -> None:
    await fill(store, 3)
    folder = await inbox_id(store)
    mark = (await store.snapshot(folder)).highestmodseq
    await store.store_flags(folder, [2], "add", SEEN, ["$Important"])
    changes = await store.changes_since(folder, mark)
    assert [(c[0], c[1], c[2]) for c in changes.changed] == [(2, SEEN, ("$Important",))]
    assert changes.expunged == [] and changes.highestmodseq == changes.changed[0][3]
    assert (await store.changes_since(folder, changes.highestmodseq)).changed == []
