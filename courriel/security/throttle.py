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
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable

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
    """Counts recent failed logins per remote address and per username."""

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 300.0,
        base_delay: float = 1.0,
        max_delay: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_keys: int = 100_000,
    ) -> None:
        if max_failures < 1 or window <= 0 or base_delay < 0 or max_delay < base_delay or max_keys < 1:
            raise ValueError("invalid throttle parameters")
        self.max_failures = max_failures
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_keys = max_keys
        self._clock = clock
        # key -> failure timestamps, oldest first; per address, with the username that failed,
        # so that a success forgives only that user's own typos (see record_success).
        # Ordered by last failure: the front holds the stalest keys.
        self._by_ip: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()
        self._by_user: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()

    def __len__(self) -> int:
        """The number of keys tracked (addresses plus usernames)."""
        return len(self._by_ip) + len(self._by_user)

    def failures(self, ip: str, username: str) -> int:
        """Recent failures that count against this attempt: the larger of the two counts."""
        now = self._clock()
        return max(
            self._recent(self._by_ip, address_key(ip), now),
            self._recent(self._by_user, _user_key(username), now),
        )

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
        now = self._clock()
        user = _user_key(username)
        self._push(self._by_ip, address_key(ip), (now, user), now)
        if user != _NO_USER:
            self._push(self._by_user, user, (now, user), now)

    def record_success(self, ip: str, username: str) -> None:
        """Forget the user's failures, and this user's failures from this address.

        The address keeps its failures against other names: an attacker who owns one account
        must not be able to reset the counter that stops them guessing the others.
        """
        user = _user_key(username)
        self._by_user.pop(user, None)
        key = address_key(ip)
        entries = self._by_ip.get(key)
        if entries is None:
            return
        kept = deque((t, u) for t, u in entries if u != user)
        if kept:
            self._by_ip[key] = deque(kept, maxlen=self.max_failures)
        else:
            del self._by_ip[key]

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


def _user_key(username: str) -> str:
    # Logins are case-insensitive, so "Alice" and "alice" share one counter.
    return username.strip().casefold()
