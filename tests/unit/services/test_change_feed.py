"""The per-process change feed (mailbox/notify.py ChangeFeed, services/imap/feed.py): one
reading per watched folder per period, however many sessions watch it, and every watcher whose
folder moved is woken; against a real store written by a second `MailboxDatabase` (as another
worker process would)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from courriel.mailbox.model import DeliveryRequest
from courriel.mailbox.notify import ChangeFeed, FeedKey
from courriel.mailbox.store import MailboxDatabase
from courriel.services.imap.account import RecentRegistry
from courriel.services.imap.feed import FeedAccount, ProcessFeeds
from courriel.storage.blobs import BlobStore

GUID = "0f1e2d3c-aaaa-bbbb-cccc-000000000001"


class Counters:
    def __init__(self) -> None:
        self.values: dict[FeedKey, int | None] = {}
        self.reads: list[list[FeedKey]] = []

    async def __call__(self, keys: Sequence[FeedKey]) -> Mapping[FeedKey, int | None]:
        self.reads.append(list(keys))
        return {k: self.values.get(k) for k in keys}


async def test_one_reading_per_folder_wakes_every_watcher_behind() -> None:
    counters = Counters()
    counters.values = {("a", 1): 5, ("b", 2): 7}
    feed = ChangeFeed(counters, interval=3600)
    woken: list[str] = []
    watches = [feed.watch("a", 1, lambda i=i: woken.append(f"a{i}"), since=5) for i in range(100)]
    late = feed.watch("a", 1, lambda: woken.append("late"), since=4)  # its snapshot is older
    other = feed.watch("b", 2, lambda: woken.append("b"))  # baseline from the first reading
    await feed.poll()
    assert counters.reads[-1] == [("a", 1), ("b", 2)]  # two readings for 102 watchers
    assert woken == ["late"]
    counters.values[("a", 1)] = 6
    await feed.poll()
    assert sorted(woken) == sorted(["late", *(f"a{i}" for i in range(100)), "late"])
    woken.clear()
    counters.values[("b", 2)] = None  # the folder was deleted
    await feed.poll()
    assert woken == ["b"]
    for w in [*watches, late, other]:
        w.close()
    assert feed.watched == 0
    await feed.close()


async def test_the_poll_runs_only_while_watched() -> None:
    counters = Counters()
    counters.values = {("a", 1): 1}
    feed = ChangeFeed(counters, interval=0.01)
    woke = asyncio.Event()
    watch = feed.watch("a", 1, woke.set, since=1)
    counters.values[("a", 1)] = 2
    await asyncio.wait_for(woke.wait(), 5)
    watch.close()
    await asyncio.sleep(0.05)
    polls = feed.polls
    await asyncio.sleep(0.05)
    assert feed.polls == polls  # nobody watches: no more readings
    await feed.close()


async def test_a_delivery_by_another_process_wakes_the_sessions(db_url: str, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    here = await MailboxDatabase.open("DB01", db_url, tmp_path, blobs)
    there = await MailboxDatabase.open("DB01", db_url, tmp_path, blobs)  # another worker's
    feeds = ProcessFeeds(interval=0.05)
    try:
        await here.ensure_mailbox(GUID, "alice@example.test")
        inbox = await here.get_folder(GUID, "INBOX")
        assert inbox is not None
        events = [asyncio.Event() for _ in range(20)]
        accounts = [
            FeedAccount(here, GUID, "alice@example.test", RecentRegistry(), lambda: None, feeds.of(here))
            for _ in events
        ]
        watches = []
        for account, event in zip(accounts, events, strict=True):
            watches.append(account.watch(inbox.id, event.set))
            await account.snapshot(inbox.id)  # as SELECT does: the baseline
        await asyncio.sleep(0.2)
        assert not any(e.is_set() for e in events)
        blob = await blobs.put(b"Subject: hi\r\n\r\nhello\r\n")
        result = await there.deliver(
            DeliveryRequest(GUID, "alice@example.test", blob, "k1", datetime.now(UTC))
        )
        assert result.status == "delivered"
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 5)
        assert feeds.of(here).watched == 1  # one folder read per period for the 20 sessions
        for watch in watches:
            watch.close()
    finally:
        await feeds.close()
        await here.close()
        await there.close()
