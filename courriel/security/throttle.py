"""Failed-login throttling shared by SMTP AUTH, IMAP and POP3 (and the admin API).

A login path asks `blocked(ip, username)` before checking a password (when it is, refuse at once:
no password check, so no guessing), and after a wrong password calls `record_failure` and waits
`delay_for(ip, username)` seconds before answering. Failures are counted per remote address and
per username, over a sliding window; the larger count decides.

Why both keys: per address stops one host trying many names; per username stops many hosts
(a botnet) trying one name. The cost is that an attacker can lock a name out for one window;
the window is short and the lock expires by itself.

IPv6 clients usually own a whole /64, so an IPv6 address is counted by its /64 prefix.
Memory is bounded: at most `max_keys` keys are tracked (the least recently failed are dropped
first), each keeps at most `max_failures` timestamps, and keys whose failures all left the
window are dropped as new failures arrive. The clock is injected, so tests need no sleeping.

With several worker processes, the counts must be the server's, not each worker's: given the
server's SharedState, the failures are kept in its shared file (shared_state.py).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

from courriel.security.shared_state import SharedState

_NO_USER = ""


def address_key(ip: str) -> str:
    """The throttling key of a remote address: the address itself for IPv4, its /64 for IPv6."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class LoginThrottle:
    """Counts recent failed logins per remote address and per username.

    In this process by default; with `shared` (the server's SharedState), in the file that all
    its worker processes share, so that N workers do not give an attacker N times the guesses.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 300.0,
        base_delay: float = 1.0,
        max_delay: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_keys: int = 100_000,
        shared: SharedState | None = None,
    ) -> None:
        if max_failures < 1 or window <= 0 or base_delay < 0 or max_delay < base_delay or max_keys < 1:
            raise ValueError("invalid throttle parameters")
        self.max_failures = max_failures
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_keys = max_keys
        # Shared across processes, the clock must be too: CLOCK_MONOTONIC is the system's.
        self._clock = clock
        self._failures: _Failures = (
            _LocalFailures(max_failures, window, max_keys)
            if shared is None
            else _SharedFailures(shared, max_failures, window, max_keys)
        )

    def __len__(self) -> int:
        """The number of keys tracked (addresses plus usernames)."""
        return len(self._failures)

    def failures(self, ip: str, username: str) -> int:
        """Recent failures that count against this attempt: the larger of the two counts."""
        return self._failures.recent(address_key(ip), _user_key(username), self._clock())

    def blocked(self, ip: str, username: str) -> bool:
        """Too many recent failures: refuse without checking the password."""
        return self.failures(ip, username) >= self.max_failures

    def delay_for(self, ip: str, username: str) -> float:
        """Seconds to wait before answering a failed attempt (call after `record_failure`):
        base_delay after the first failure, doubling with each further one, up to max_delay."""
        count = self.failures(ip, username)
        if count == 0:
            return 0.0
        return float(min(self.max_delay, self.base_delay * 2.0 ** (count - 1)))

    def record_failure(self, ip: str, username: str) -> None:
        self._failures.add(address_key(ip), _user_key(username), self._clock())

    def record_success(self, ip: str, username: str) -> None:
        """Forget the user's failures, and this user's failures from this address.

        The address keeps its failures against other names: an attacker who owns one account
        must not be able to reset the counter that stops them guessing the others.
        """
        self._failures.forgive(address_key(ip), _user_key(username))


class _Failures(Protocol):
    """Where failures are kept: keys are already normalized (address_key, _user_key)."""

    def __len__(self) -> int: ...

    def recent(self, ip: str, user: str, now: float) -> int: ...

    def add(self, ip: str, user: str, now: float) -> None: ...

    def forgive(self, ip: str, user: str) -> None: ...


class _LocalFailures:
    """This process's failures, in two ordered tables."""

    def __init__(self, max_failures: int, window: float, max_keys: int) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        # key -> failure timestamps, oldest first; per address, with the username that failed,
        # so that a success forgives only that user's own typos (see record_success).
        # Ordered by last failure: the front holds the stalest keys.
        self._by_ip: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()
        self._by_user: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_ip) + len(self._by_user)

    def recent(self, ip: str, user: str, now: float) -> int:
        return max(self._recent(self._by_ip, ip, now), self._recent(self._by_user, user, now))

    def add(self, ip: str, user: str, now: float) -> None:
        self._push(self._by_ip, ip, (now, user), now)
        if user != _NO_USER:
            self._push(self._by_user, user, (now, user), now)

    def forgive(self, ip: str, user: str) -> None:
        self._by_user.pop(user, None)
        entries = self._by_ip.get(ip)
        if entries is None:
            return
        kept = deque((t, u) for t, u in entries if u != user)
        if kept:
            self._by_ip[ip] = deque(kept, maxlen=self.max_failures)
        else:
            del self._by_ip[ip]

    def _recent(self, table: OrderedDict[str, deque[tuple[float, str]]], key: str, now: float) -> int:
        entries = table.get(key)
        if entries is None:
            return 0
        horizon = now - self.window
        return sum(1 for t, _ in entries if t > horizon)

    def _push(
        self,
        table: OrderedDict[str, deque[tuple[float, str]]],
        key: str,
        entry: tuple[float, str],
        now: float,
    ) -> None:
        entries = table.pop(key, None)
        if entries is None:
            # maxlen: only the last max_failures failures can matter to blocked/delay_for.
            entries = deque(maxlen=self.max_failures)
        entries.append(entry)
        table[key] = entries  # re-inserted at the end: most recently failed
        self._expire(table, now)
        while len(self._by_ip) + len(self._by_user) > self.max_keys:
            other = self._by_user if table is self._by_ip else self._by_ip
            victim = other if len(other) > len(table) else table
            victim.popitem(last=False)

    def _expire(self, table: OrderedDict[str, deque[tuple[float, str]]], now: float) -> None:
        # Keys are ordered by last failure, so the stale ones are all at the front.
        horizon = now - self.window
        while table:
            key, entries = next(iter(table.items()))
            if entries[-1][0] > horizon:
                break
            del table[key]


class _SharedFailures:
    """Failures in the server's shared file: one row per failure, per address and per user.

    Bounded as the local tables are: a key keeps its last `max_failures` rows, rows leave with
    the window, and at most `max_keys` rows are kept (ids grow with time, so the oldest go).
    """

    def __init__(self, state: SharedState, max_failures: int, window: float, max_keys: int) -> None:
        self.state = state
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys

    def __len__(self) -> int:
        ((count,),) = self.state.read("SELECT count(*) FROM (SELECT DISTINCT kind, key FROM login_failures)")
        assert isinstance(count, int)
        return count

    def recent(self, ip: str, user: str, now: float) -> int:
        horizon = now - self.window
        ((by_ip, by_user),) = self.state.read(
            "SELECT (SELECT count(*) FROM login_failures WHERE kind = 'ip' AND key = ? AND at > ?),"
            " (SELECT count(*) FROM login_failures WHERE kind = 'user' AND key = ? AND at > ?)",
            (ip, horizon, user, horizon),
        )
        assert isinstance(by_ip, int) and isinstance(by_user, int)
        return max(by_ip, by_user)

    def add(self, ip: str, user: str, now: float) -> None:
        keys = [("ip", ip)] + ([("user", user)] if user != _NO_USER else [])
        with self.state.write() as conn:
            for kind, key in keys:
                conn.execute(
                    "INSERT INTO login_failures (kind, key, user, at) VALUES (?, ?, ?, ?)",
                    (kind, key, user, now),
                )
                # Only the last max_failures failures can matter to blocked/delay_for.
                conn.execute(
                    "DELETE FROM login_failures WHERE kind = ?1 AND key = ?2 AND id NOT IN"
                    " (SELECT id FROM login_failures WHERE kind = ?1 AND key = ?2 ORDER BY id DESC LIMIT ?3)",
                    (kind, key, self.max_failures),
                )
            conn.execute("DELETE FROM login_failures WHERE at <= ?", (now - self.window,))
            conn.execute(
                "DELETE FROM login_failures WHERE id <= (SELECT max(id) FROM login_failures) - ?",
                (self.max_keys,),
            )

    def forgive(self, ip: str, user: str) -> None:
        with self.state.write() as conn:
            conn.execute("DELETE FROM login_failures WHERE kind = 'user' AND key = ?", (user,))
            conn.execute("DELETE FROM login_failures WHERE kind = 'ip' AND key = ? AND user = ?", (ip, user))


def _user_key(username: str) -> str:
    # Logins are case-insensitive, so "Alice" and "alice" share one counter.
    return username.strip().casefold()
