"""Each server's in-memory copy of the directory, kept current by polling the version counter.

The hot paths (RCPT checks, categorizing, routing, logins) read `cache.snapshot` and never query
SQL. `run()` polls the one-row version counter (cheap: a primary-key read) and, when another
process — the `courriel` command, the admin API, another server — has committed a change, loads a
fresh snapshot and tells subscribers, so changes take effect within about one poll interval
without a restart. A failed poll keeps the last good snapshot: a directory outage must not stop
mail flow for recipients already known.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from courriel.org.directory import Directory
from courriel.org.snapshot import DirectorySnapshot

log = logging.getLogger(__name__)

Subscriber = Callable[[DirectorySnapshot], Awaitable[None] | None]


class DirectoryCache:
    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        self._snapshot: DirectorySnapshot | None = None
        self._subscribers: list[Subscriber] = []

    @property
    def snapshot(self) -> DirectorySnapshot:
        if self._snapshot is None:
            raise RuntimeError("DirectoryCache.load() has not run yet")
        return self._snapshot

    async def load(self) -> DirectorySnapshot:
        """Read the whole directory now."""
        self._snapshot = await self._directory.snapshot()
        return self._snapshot

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(snapshot)` after each reload; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    async def refresh(self) -> bool:
        """Reload if the directory changed since the snapshot; True if it did."""
        version = await self._directory.version()
        if self._snapshot is not None and version == self._snapshot.version:
            return False
        snapshot = await self.load()
        for callback in list(self._subscribers):
            try:
                result = callback(snapshot)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # One broken subscriber must not keep the others (or the cache) stale.
                log.exception("directory change subscriber %r failed", callback)
        return True

    async def run(self, poll_interval: float = 1.0) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(poll_interval)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("directory poll failed, keeping version %s: %s", self._version_text(), exc)

    def _version_text(self) -> str:
        return "none" if self._snapshot is None else str(self._snapshot.version)
