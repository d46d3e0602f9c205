"""Change notifications: what IMAP IDLE (RFC 2177) and NOTIFY-style wake-ups wait on.

In the process that made a change, subscribers hear of it as soon as it is committed. Another
process (another worker of the server) cannot hear those events, so a cheap counter is polled —
the folder's HIGHESTMODSEQ, or the mailbox's change counter, which every write bumps:
`wait_for_change` polls it for one waiter; `ChangeFeed` polls once for every watcher of a
process (thousands of IMAP sessions in IDLE), one batch per database per period, and fans a
moved counter out to the watchers of that folder. Notifications only say "look again": the
subscriber then asks the store what changed (changes_since), so a dropped event (a full queue)
loses nothing but latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

ChangeKind = Literal["messages", "flags", "expunge", "folders"]
POLL_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class Change:
    """Something committed in a mailbox. folder_id None: the folder list itself changed."""

    guid: str
    folder_id: int | None
    kind: ChangeKind
    modseq: int | None = None  # the folder's HIGHESTMODSEQ after the change, when known
    uids: tuple[int, ...] = ()


Target = Callable[[Change], None] | asyncio.Queue[Change]


class Subscription:
    """A handle: `close()` (or leaving a `with` block) stops the notifications."""

    def __init__(self, hub: ChangeHub, guid: str, folder_id: int | None, target: Target) -> None:
        self.hub = hub
        self.guid = guid
        self.folder_id = folder_id
        self.target = target

    def wants(self, change: Change) -> bool:
        return self.folder_id is None or change.folder_id is None or change.folder_id == self.folder_id

    def deliver(self, change: Change) -> None:
        if isinstance(self.target, asyncio.Queue):
            try:
                self.target.put_nowait(change)
            except asyncio.QueueFull:
                log.debug("change queue full for mailbox %s; the subscriber will resynchronise", self.guid)
            return
        try:
            self.target(change)
        except Exception:  # a subscriber's bug must not fail the writer that notified it
            log.exception("change callback failed for mailbox %s", self.guid)

    def close(self) -> None:
        self.hub.remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class ChangeHub:
    """In-process fan-out of committed changes, per mailbox."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}

    def subscribe(self, guid: str, folder_id: int | None, target: Target) -> Subscription:
        subscription = Subscription(self, guid, folder_id, target)
        self._subscribers.setdefault(guid, set()).add(subscription)
        return subscription

    def remove(self, subscription: Subscription) -> None:
        group = self._subscribers.get(subscription.guid)
        if group is not None:
            group.discard(subscription)
            if not group:
                del self._subscribers[subscription.guid]

    def publish(self, changes: Iterable[Change]) -> None:
        for change in changes:
            for subscription in list(self._subscribers.get(change.guid, ())):
                if subscription.wants(change):
                    subscription.deliver(change)


async def wait_for_change(
    hub: ChangeHub,
    guid: str,
    folder_id: int | None,
    timeout: float,
    counter: Callable[[], Awaitable[int | None]],
    since: int | None = None,
    interval: float = POLL_INTERVAL,
) -> bool:
    """True once the folder (or mailbox) changed after `since` (default: now); False on timeout."""
    woken = asyncio.Event()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # Subscribe before reading the baseline, so nothing committed in between is missed.
    with hub.subscribe(guid, folder_id, lambda _change: woken.set()):
        baseline = since if since is not None else await counter()
        current = baseline if since is None else await counter()
        # A changed counter is a change from any process; None means the folder is gone.
        while current == baseline and not woken.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(woken.wait(), min(interval, remaining))
            except TimeoutError:
                current = await counter()
        return True


FeedKey = tuple[str, int | None]  # (mailbox guid, folder id or None for the folder list)
Counters = Callable[[Sequence[FeedKey]], Awaitable[Mapping[FeedKey, int | None]]]


class FeedWatch:
    """One watcher of a `ChangeFeed`. `since` is the counter value it knows (set it from the
    snapshot it read; None: the feed's next reading); `close()` stops it."""

    __slots__ = ("_feed", "key", "wake", "since")

    def __init__(self, feed: ChangeFeed, key: FeedKey, wake: Callable[[], None], since: int | None) -> None:
        self._feed = feed
        self.key = key
        self.wake = wake
        self.since = since

    def close(self) -> None:
        self._feed.remove(self)


class ChangeFeed:
    """Changes committed by other processes, for every watcher of this process, by polling.

    Every `interval` seconds (longer when there are more watched folders than `budget` counter
    reads a second allow) it reads the counters of the watched folders in one `counters` call
    and wakes each watcher whose folder's counter differs from what it knows. A folder that
    disappeared (None) wakes its watchers too: the session then finds it gone. The poll runs
    only while someone watches."""

    def __init__(self, counters: Counters, interval: float = 1.0, budget: float = 2000.0) -> None:
        self._counters = counters
        self.interval = interval
        self.budget = budget
        self._watchers: dict[FeedKey, set[FeedWatch]] = {}
        self._task: asyncio.Task[None] | None = None
        self.polls = 0  # counter reads so far (for tests and metrics)

    def watch(
        self, guid: str, folder_id: int | None, wake: Callable[[], None], since: int | None = None
    ) -> FeedWatch:
        handle = FeedWatch(self, (guid, folder_id), wake, since)
        self._watchers.setdefault(handle.key, set()).add(handle)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="change-feed")
        return handle

    def remove(self, handle: FeedWatch) -> None:
        group = self._watchers.get(handle.key)
        if group is not None:
            group.discard(handle)
            if not group:
                del self._watchers[handle.key]

    @property
    def watched(self) -> int:
        """Distinct folders watched."""
        return len(self._watchers)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while self._watchers:
            try:
                await self.poll()
            except Exception:  # the database is away for a moment: try again next period
                log.warning("change feed poll failed", exc_info=True)
            await asyncio.sleep(max(self.interval, len(self._watchers) / self.budget))

    async def poll(self) -> None:
        """Read the watched counters once; wake the watchers that are behind."""
        keys = list(self._watchers)
        if not keys:
            return
        values = await self._counters(keys)
        self.polls += 1
        for key in keys:
            value = values.get(key)
            for handle in list(self._watchers.get(key, ())):
                if handle.since is None and value is not None:
                    handle.since = value  # its first reading: nothing to report yet
                elif handle.since != value:
                    handle.since = value
                    handle.wake()
