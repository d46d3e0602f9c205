"""Change notifications: what IMAP IDLE (RFC 2177) and NOTIFY-style wake-ups wait on.

In the process that made a change, subscribers hear of it as soon as it is committed. Another
process (a separate IMAP back end, say) cannot hear those events, so `wait_for_change` also
polls a cheap counter — the folder's HIGHESTMODSEQ, or the mailbox's change counter, which
every write bumps — about twice a second. Notifications only say "look again": the subscriber
then asks the store what changed (changes_since), so a dropped event (a full queue) loses
nothing but latency.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
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
