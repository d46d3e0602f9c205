"""Outbound connection limits and reuse: how many sessions may be open, and idle ones kept warm.

A destination is the set of next hops one connection can serve: for DNS routing the send
connector and the recipient domain (its MX hosts), for a smart host connector the connector
alone (every domain goes to the same smart hosts). Limits follow Exchange's transport defaults
(MaxPerDomainOutboundConnections 20, MaxOutboundConnections 1000) and its send connector's
MaxMessagesPerConnection 20; an idle session waits a few seconds for the next message to the
same destination before it says QUIT (Postfix's smtp_connection_cache_time_limit is 2 s), and
never longer than the connector's ConnectionInactivityTimeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from courriel.transport.deliver.client import SmtpClient

PER_DESTINATION = 20
TOTAL = 1000
MAX_TRANSACTIONS = 20
IDLE_TIME = 5.0


class Connections:
    def __init__(
        self,
        *,
        per_destination: int = PER_DESTINATION,
        total: int = TOTAL,
        max_transactions: int = MAX_TRANSACTIONS,
        idle_time: float = IDLE_TIME,
    ) -> None:
        self.per_destination = per_destination
        self.max_transactions = max_transactions
        self.idle_time = idle_time
        self.total = total
        self._slots = asyncio.Semaphore(total)
        self._busy: dict[str, int] = {}
        self._idle: dict[str, list[tuple[float, SmtpClient]]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closing = False

    # -- concurrency ------------------------------------------------------------------------

    def reserve(self, key: str) -> bool:
        """Claim one of the destination's session slots (released with `release`)."""
        if self._closing or self._busy.get(key, 0) >= self.per_destination:
            return False
        self._busy[key] = self._busy.get(key, 0) + 1
        return True

    def release(self, key: str) -> None:
        left = self._busy.get(key, 1) - 1
        if left > 0:
            self._busy[key] = left
        else:
            self._busy.pop(key, None)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of the server-wide connection slots."""
        async with self._slots:
            yield

    def busy(self, key: str) -> int:
        return self._busy.get(key, 0)

    # -- reuse ------------------------------------------------------------------------------

    def take(self, key: str) -> SmtpClient | None:
        """The most recently parked live session to this destination, if any."""
        parked = self._idle.get(key)
        while parked:
            _, client = parked.pop()
            if client.usable:
                return client
            asyncio.get_running_loop().create_task(client.close(polite=False))
        self._idle.pop(key, None)
        return None

    def reusable(self, client: SmtpClient) -> bool:
        """May this session carry another message (alive, under MaxMessagesPerConnection)?"""
        return not self._closing and client.usable and client.transactions < self.max_transactions

    async def give_back(self, key: str, client: SmtpClient) -> None:
        """Park a session for the next message, or close it if it cannot take one."""
        if not self.reusable(client) or sum(len(v) for v in self._idle.values()) >= self.total:
            await client.close()
            return
        self._idle.setdefault(key, []).append(
            (time.monotonic() + min(self.idle_time, client.timeout), client)
        )
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="smtp-idle-reaper")

    async def _reap(self) -> None:
        while self._idle:
            await asyncio.sleep(max(self.idle_time / 4, 0.05))
            now = time.monotonic()
            for key in list(self._idle):
                entries = self._idle.get(key, [])
                stale = [(d, c) for d, c in entries if d <= now or not c.usable]
                if not stale:
                    continue
                # Filter before awaiting: `take` may pop from these lists meanwhile.
                keep = [e for e in entries if e not in stale]
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
                for _, client in stale:
                    await client.close(polite=client.usable)

    async def close(self) -> None:
        self._closing = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        idle, self._idle = self._idle, {}
        await asyncio.gather(
            *(c.close() for parked in idle.values() for _, c in parked), return_exceptions=True
        )
