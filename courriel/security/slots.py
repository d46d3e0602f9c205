"""Counted slots with limits: connections per service, per client address, sessions per user.

A service takes slots when a connection (or a login) begins and gives them back when it ends;
`take` is all-or-nothing, so a refused connection holds nothing. `LocalSlots` counts in this
process; `SharedSlots` counts in the server's shared file (shared_state.py), so that the limits
hold across its worker processes: each row is leased by the process that took it, and the slots
of a process that died without giving them back (SIGKILL, a crash) are reaped before any refusal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Protocol

from courriel.security.shared_state import SharedState

Claim = tuple[str, str, int | None]  # (kind, key, limit); a None limit counts without refusing
Held = tuple[str, str]  # (kind, key)


class Slots(Protocol):
    def take(self, scope: str, claims: Sequence[Claim]) -> Claim | None:
        """Take one slot of each claim, or none: the first claim at its limit, or None."""
        ...

    def give_back(self, scope: str, held: Iterable[Held]) -> None: ...

    def held(self, scope: str, kind: str, key: str) -> int: ...


class LocalSlots:
    """The slots of this process only (a server with one worker, tests)."""

    def __init__(self) -> None:
        self._held: Counter[tuple[str, str, str]] = Counter()

    def __len__(self) -> int:
        return len(self._held)

    def take(self, scope: str, claims: Sequence[Claim]) -> Claim | None:
        for claim in claims:
            kind, key, limit = claim
            if limit is not None and self._held[scope, kind, key] >= limit:
                return claim
        for kind, key, _ in claims:
            self._held[scope, kind, key] += 1
        return None

    def give_back(self, scope: str, held: Iterable[Held]) -> None:
        for kind, key in held:
            self._held[scope, kind, key] -= 1
            if self._held[scope, kind, key] <= 0:
                del self._held[scope, kind, key]

    def held(self, scope: str, kind: str, key: str) -> int:
        return self._held.get((scope, kind, key), 0)


class SharedSlots:
    """Slots counted across the worker processes of a server."""

    def __init__(self, state: SharedState) -> None:
        self.state = state

    def take(self, scope: str, claims: Sequence[Claim]) -> Claim | None:
        with self.state.write() as conn:
            pid, started = self.state.owner

            def full() -> Claim | None:
                for claim in claims:
                    kind, key, limit = claim
                    if limit is None:
                        continue
                    (count,) = conn.execute(
                        "SELECT coalesce(sum(n), 0) FROM slots WHERE scope = ? AND kind = ? AND key = ?",
                        (scope, kind, key),
                    ).fetchone()
                    if count >= limit:
                        return claim
                return None

            refused = full()
            # Refuse only for slots held by live processes.
            if refused is not None and (self.state.reap(conn) == 0 or (refused := full()) is not None):
                return refused
            conn.executemany(
                "INSERT INTO slots (scope, kind, key, pid, started, n) VALUES (?, ?, ?, ?, ?, 1)"
                " ON CONFLICT DO UPDATE SET n = n + 1",
                [(scope, kind, key, pid, started) for kind, key, _ in claims],
            )
        return None

    def give_back(self, scope: str, held: Iterable[Held]) -> None:
        with self.state.write() as conn:
            pid, started = self.state.owner
            for kind, key in held:
                where = (scope, kind, key, pid, started)
                conn.execute(
                    "UPDATE slots SET n = n - 1"
                    " WHERE scope = ? AND kind = ? AND key = ? AND pid = ? AND started = ?",
                    where,
                )
                conn.execute(
                    "DELETE FROM slots"
                    " WHERE scope = ? AND kind = ? AND key = ? AND pid = ? AND started = ? AND n <= 0",
                    where,
                )

    def held(self, scope: str, kind: str, key: str) -> int:
        ((count,),) = self.state.read(
            "SELECT coalesce(sum(n), 0) FROM slots WHERE scope = ? AND kind = ? AND key = ?",
            (scope, kind, key),
        )
        assert isinstance(count, int)
        return count
