"""Folders: defaults and special use, CREATE, DELETE (RFC 3501 §6.3.4), RENAME (§6.3.5), subscriptions."""

from __future__ import annotations

import pytest

from courriel.mailbox.errors import (
    FolderExists,
    FolderRefused,
    InvalidFolderName,
    NoSuchFolder,
    SpecialUseRefused,
)
from courriel.mailbox.store import MailboxDatabase
from tests.unit.mailbox.mailbox_harness import GUID, OWNER, fill


async def names(store: MailboxDatabase) -> dict[str, tuple[str | None, bool]]:
    return {f.name: (f.special_use, f.noselect) for f in await store.list_folders(GUID)}


async def test_default_folders_have_exchange_names_and_special_use(store: MailboxDatabase) -> None:
    assert await store.ensure_mailbox(GUID, OWNER) is True
    assert await store.ensure_mailbox(GUID, OWNER) is False  # idempotent
    folders = {f.name: f for f in await store.list_folders(GUID)}
    assert {n: f.special_use for n, f in folders.items()} == {
        "INBOX": None,
        "Sent Items": "\\Sent",
        "Drafts": "\\Drafts",
        "Deleted Items": "\\Trash",
        "Junk Email": "\\Junk",
        "Outbox": None,
    }
    assert all(f.subscribed and f.builtin and not f.noselect for f in folders.values())
    assert all(f.uidnext == 1 and f.messages == 0 and f.highestmodseq >= 1 for f in folders.values())
    assert len({f.uidvalidity for f in folders.values()}) == 6  # each folder its own UIDVALIDITY
    assert await store.mailbox_usage(GUID) == (0, 0)


async def test_inbox_is_case_insensitive_including_its_children(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    inbox = await store.get_folder(GUID, "iNbOx")
    assert inbox is not None and inbox.name == "INBOX"
    child = await store.create_folder(GUID, "Inbox/Receipts")
    assert child.name == "INBOX/Receipts"
    assert (await store.get_folder(GUID, "inbox/Receipts")) == child
    assert (await store.get_folder(GUID, "INBOX/receipts")) is None  # only the INBOX level folds case
    with pytest.raises(FolderExists):
        await store.create_folder(GUID, "inbox")


async def test_create_makes_missing_parents_and_accepts_trailing_separator(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    created = await store.create_folder(GUID, "Projects/2026/Q4/")
    assert created.name == "Projects/2026/Q4" and not created.has_children
    listed = {f.name: f for f in await store.list_folders(GUID)}
    assert listed["Projects"].has_children and listed["Projects/2026"].has_children
    assert not listed["Projects"].noselect  # intermediate folders are real, selectable folders
    assert not listed["Projects"].subscribed
    with pytest.raises(FolderExists):
        await store.create_folder(GUID, "Projects/2026")


async def test_create_with_special_use(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    archive = await store.create_folder(GUID, "Archive", "\\archive")
    assert archive.special_use == "\\Archive"
    with pytest.raises(SpecialUseRefused):
        await store.create_folder(GUID, "Everything", "\\All")  # virtual: RFC 6154
    with pytest.raises(SpecialUseRefused):
        await store.create_folder(GUID, "Odd", "\\Bogus")
    assert await store.get_folder(GUID, "Everything") is None


BAD_NAMES = ["", "a//b", "/a", "a*", "50%", "tab\there", "\\Sent", "x" * 1001, "/".join("d" * 33)]


async def test_invalid_names_are_refused(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    for bad in BAD_NAMES:
        with pytest.raises(InvalidFolderName):
            await store.create_folder(GUID, bad)
        assert await store.get_folder(GUID, bad) is None
    assert len(await store.list_folders(GUID)) == 6


async def test_uidvalidity_changes_when_a_folder_is_recreated(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    first = await store.create_folder(GUID, "Temp")
    await store.delete_folder(GUID, "Temp")
    second = await store.create_folder(GUID, "Temp")
    assert second.uidvalidity > first.uidvalidity
    assert second.id != first.id


async def test_delete_refuses_inbox_and_default_folders(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    with pytest.raises(FolderRefused):
        await store.delete_folder(GUID, "inbox")
    with pytest.raises(FolderRefused):
        await store.delete_folder(GUID, "Sent Items")
    with pytest.raises(NoSuchFolder):
        await store.delete_folder(GUID, "Nope")
    assert len(await store.list_folders(GUID)) == 6


async def test_delete_removes_messages_and_updates_usage(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    await store.create_folder(GUID, "Old")
    await fill(store, 3, folder="Old", size=300)
    await fill(store, 2, prefix="i", size=100)
    assert await store.mailbox_usage(GUID) == (3 * 301 + 2 * 101, 5)  # size + 1 byte of prefix
    await store.delete_folder(GUID, "Old")
    assert "Old" not in await names(store)
    assert await store.mailbox_usage(GUID) == (2 * 101, 2)


async def test_delete_with_children_leaves_a_noselect_placeholder(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    await store.create_folder(GUID, "A/B")
    await fill(store, 2, folder="A")
    await store.delete_folder(GUID, "A")  # RFC 3501 §6.3.4: children stay, A becomes \Noselect
    a = await store.get_folder(GUID, "A")
    assert a is not None and a.noselect and a.messages == 0 and a.has_children
    assert await store.mailbox_usage(GUID) == (0, 0)
    with pytest.raises(FolderRefused):
        await store.delete_folder(GUID, "A")  # \Noselect with inferiors: an error
    with pytest.raises(NoSuchFolder):
        await store.snapshot(a.id)
    # Deleting the last child removes the placeholder too.
    await store.delete_folder(GUID, "A/B")
    assert "A" not in await names(store)


async def test_create_on_a_placeholder_makes_it_selectable_with_new_uidvalidity(
    store: MailboxDatabase,
) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    before = await store.create_folder(GUID, "P")
    await store.create_folder(GUID, "P/child")
    await store.delete_folder(GUID, "P")
    again = await store.create_folder(GUID, "P")
    assert not again.noselect and again.uidvalidity > before.uidvalidity and again.has_children


async def test_rename_moves_children_and_subscriptions(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    work = await store.create_folder(GUID, "Work/Clients/Acme")
    await fill(store, 2, folder="Work/Clients/Acme")
    await store.subscribe(GUID, "Work/Clients", True)
    await store.rename_folder(GUID, "Work", "Archive/Work")
    listed = await names(store)
    assert "Work" not in listed and "Work/Clients/Acme" not in listed
    assert {"Archive", "Archive/Work", "Archive/Work/Clients", "Archive/Work/Clients/Acme"} <= set(listed)
    moved = await store.get_folder(GUID, "Archive/Work/Clients/Acme")
    assert moved is not None
    assert (moved.id, moved.uidvalidity, moved.messages) == (work.id, work.uidvalidity, 2)
    assert "Archive/Work/Clients" in await store.list_subscriptions(GUID)
    assert "Work/Clients" not in await store.list_subscriptions(GUID)


async def test_rename_errors(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    await store.create_folder(GUID, "A")
    await store.create_folder(GUID, "B")
    with pytest.raises(FolderExists):
        await store.rename_folder(GUID, "A", "B")
    with pytest.raises(NoSuchFolder):
        await store.rename_folder(GUID, "Missing", "C")
    with pytest.raises(FolderRefused):
        await store.rename_folder(GUID, "A", "A/inside")
    with pytest.raises(FolderRefused):
        await store.rename_folder(GUID, "Drafts", "Brouillons")
    with pytest.raises(FolderExists):
        await store.rename_folder(GUID, "A", "inbox")


async def test_rename_inbox_moves_its_messages_to_a_new_folder(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    await store.create_folder(GUID, "INBOX/Sub")
    delivered = await fill(store, 3)
    inbox = await store.get_folder(GUID, "INBOX")
    assert inbox is not None
    await store.rename_folder(GUID, "INBOX", "Old Mail")
    old = await store.get_folder(GUID, "Old Mail")
    inbox_after = await store.get_folder(GUID, "INBOX")
    assert old is not None and inbox_after is not None
    assert inbox_after.id == inbox.id and inbox_after.messages == 0 and inbox_after.size == 0
    assert inbox_after.uidnext == inbox.uidnext  # UIDs of INBOX are never reused
    assert "INBOX/Sub" in await names(store)  # RFC 3501 §6.3.5: inferiors of INBOX are not moved
    snap = await store.snapshot(old.id)
    assert snap.uids == [r.uid for r in delivered] and old.messages == 3 and old.unseen == 3
    assert snap.uidnext > max(snap.uids)
    changes = await store.changes_since(inbox.id, inbox.highestmodseq)
    assert changes.expunged == [r.uid for r in delivered]
    assert await store.mailbox_usage(GUID) == (old.size, 3)
    # New mail still lands in INBOX, with UIDs above the old ones.
    (again,) = await fill(store, 1, prefix="new")
    assert again.folder_id == inbox.id and again.uid is not None and again.uid >= inbox.uidnext


async def test_subscriptions_outlive_their_folder(store: MailboxDatabase) -> None:
    await store.ensure_mailbox(GUID, OWNER)
    await store.create_folder(GUID, "News")
    assert await store.subscribe(GUID, "News") is True
    assert await store.subscribe(GUID, "News") is False
    await store.delete_folder(GUID, "News")
    assert "News" in await store.list_subscriptions(GUID)  # RFC 3501 §6.3.6
    assert await store.subscribe(GUID, "Not/There") is True  # no existence check
    assert await store.subscribe(GUID, "News", on=False) is True
    assert "News" not in await store.list_subscriptions(GUID)
    inbox = await store.get_folder(GUID, "INBOX")
    assert inbox is not None and inbox.subscribed
