"""Changes made by other worker processes, for the IMAP sessions of this one.

Each worker runs its own IMAP back end over the same mailbox databases (SO_REUSEPORT), so a
delivery or a flag change made in one worker is not heard in the others' processes. The store
tells its own process at once (`subscribe_changes`); for the rest, one `ChangeFeed` per database
polls the counters of every folder this process's sessions have selected (one reading per
folder per period, however many sessions watch it) and wakes the sessions whose folder moved:
IDLE answers within `interval` (a second), other commands see it at their end (RFC 9051 §7.4.1).

`FeedAccount` is the store account with both watches: `watch` subscribes to the store and to
the feed, and the SELECT snapshot read right after tells the feed which HIGHESTMODSEQ the session
knows, so a change committed between the two is not lost.
"""

from __future__ import annotations

from collections.abc import Callable

from courriel.mailbox.model import FolderSnapshot
from courriel.mailbox.notify import ChangeFeed, FeedWatch, Subscription
from courriel.mailbox.store import MailboxDatabase
from courriel.services.imap.account import RecentRegistry, StoreAccount
from courriel.services.placement import Placement


class ProcessFeeds:
    """The change feed of each database, made on first use, closed with the service."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._feeds: dict[str, ChangeFeed] = {}

    def of(self, db: MailboxDatabase) -> ChangeFeed:
        feed = self._feeds.get(db.name)
        if feed is None:
            feed = self._feeds[db.name] = ChangeFeed(db.change_counters, self.interval)
        return feed

    async def close(self) -> None:
        for feed in self._feeds.values():
            await feed.close()
        self._feeds.clear()


class Watches:
    """The two subscriptions of one selected folder, closed together."""

    __slots__ = ("local", "remote")

    def __init__(self, local: Subscription, remote: FeedWatch) -> None:
        self.local = local
        self.remote = remote

    def close(self) -> None:
        self.local.close()
        self.remote.close()


class FeedAccount(StoreAccount):
    __slots__ = ("_feed", "_pending")

    def __init__(
        self,
        db: MailboxDatabase,
        guid: str,
        user: str,
        recent: RecentRegistry,
        on_release: Callable[[], None],
        feed: ChangeFeed,
        *,
        placement: Placement | None = None,
    ) -> None:
        super().__init__(db, guid, user, recent, on_release, placement=placement)
        self._feed = feed
        self._pending: FeedWatch | None = None  # watched, its snapshot not read yet

    # The session only needs close() (backend.Watch); StoreAccount declares its narrower type.
    def watch(self, folder_id: int, wake: Callable[[], None]) -> Watches:  # type: ignore[override]
        remote = self._feed.watch(self._guid, folder_id, wake)
        self._pending = remote
        return Watches(super().watch(folder_id, wake), remote)

    async def snapshot(self, folder_id: int) -> FolderSnapshot:
        snapshot = await super().snapshot(folder_id)
        pending, self._pending = self._pending, None
        if pending is not None and pending.key[1] == folder_id and pending.since is None:
            pending.since = snapshot.highestmodseq
        return snapshot
