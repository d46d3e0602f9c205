"""Failed-login throttling with an injected clock: delays, blocking, expiry, memory bounds."""

from __future__ import annotations

import pytest

from courriel.security.throttle import LoginThrottle, address_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock: Clock) -> LoginThrottle:
    return LoginThrottle(max_failures=5, window=300.0, base_delay=1.0, max_delay=15.0, clock=clock)


def test_no_failures_no_delay(throttle: LoginThrottle) -> None:
    assert throttle.delay_for("192.0.2.1", "alice") == 0.0
    assert not throttle.blocked("192.0.2.1", "alice")


def test_delay_doubles_up_to_the_cap(throttle: LoginThrottle) -> None:
    delays = []
    for _ in range(5):
        throttle.record_failure("192.0.2.1", "alice")
        delays.append(throttle.delay_for("192.0.2.1", "alice"))
    assert delays == [1.0, 2.0, 4.0, 8.0, 15.0]


def test_blocked_after_max_failures_by_address(throttle: LoginThrottle) -> None:
    for name in ["a", "b", "c", "d"]:
        throttle.record_failure("192.0.2.1", name)
    assert not throttle.blocked("192.0.2.1", "e")
    throttle.record_failure("192.0.2.1", "e")
    assert throttle.blocked("192.0.2.1", "anyone")
    assert not throttle.blocked("192.0.2.2", "anyone")


def test_blocked_after_max_failures_by_username(throttle: LoginThrottle) -> None:
    for i in range(5):
        throttle.record_failure(f"192.0.2.{i}", "Alice")
    assert throttle.blocked("198.51.100.7", "alice")  # usernames compare case-insensitively
    assert not throttle.blocked("198.51.100.7", "bob")


def test_failures_expire_after_the_window(throttle: LoginThrottle, clock: Clock) -> None:
    for _ in range(5):
        throttle.record_failure("192.0.2.1", "alice")
        clock.now += 10
    assert throttle.blocked("192.0.2.1", "alice")
    clock.now += 300 - 50 + 1  # the first failure (50 s ago at the last record) has left
    assert not throttle.blocked("192.0.2.1", "alice")
    assert throttle.delay_for("192.0.2.1", "alice") == 8.0
    clock.now += 100
    assert throttle.failures("192.0.2.1", "alice") == 0


def test_success_forgives_own_failures_only(throttle: LoginThrottle) -> None:
    for _ in range(2):
        throttle.record_failure("192.0.2.1", "mallory")
    for _ in range(2):
        throttle.record_failure("192.0.2.1", "victim")
    throttle.record_success("192.0.2.1", "Mallory")
    assert throttle.failures("192.0.2.1", "mallory") == 2  # the address keeps the guesses at victim
    assert throttle.failures("192.0.2.9", "mallory") == 0
    assert throttle.failures("192.0.2.9", "victim") == 2


def test_success_clears_a_users_typos(throttle: LoginThrottle) -> None:
    throttle.record_failure("192.0.2.1", "alice")
    throttle.record_failure("192.0.2.1", "alice")
    throttle.record_success("192.0.2.1", "alice")
    assert throttle.delay_for("192.0.2.1", "alice") == 0.0
    assert len(throttle) == 0


def test_ipv6_counted_by_prefix(throttle: LoginThrottle) -> None:
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("not-an-ip") == "not-an-ip"
    for i in range(5):
        throttle.record_failure(f"2001:db8::{i + 1:x}", f"user{i}")
    assert throttle.blocked("2001:db8::abcd", "someone")
    assert not throttle.blocked("2001:db8:0:1::1", "someone")


def test_empty_username_counts_only_against_the_address(throttle: LoginThrottle) -> None:
    throttle.record_failure("192.0.2.1", "")
    assert throttle.failures("192.0.2.1", "x") == 1
    assert len(throttle) == 1


def test_stale_keys_are_dropped(throttle: LoginThrottle, clock: Clock) -> None:
    for i in range(100):
        throttle.record_failure(f"192.0.2.{i}", f"user{i}")
    assert len(throttle) == 200
    clock.now += 301
    throttle.record_failure("198.51.100.1", "fresh")
    assert len(throttle) == 2


def test_key_count_is_capped(clock: Clock) -> None:
    throttle = LoginThrottle(clock=clock, max_keys=50)
    for i in range(1000):
        throttle.record_failure(f"10.0.{i // 256}.{i % 256}", f"user{i}")
        assert len(throttle) <= 50
    # The most recent failures are the ones kept.
    assert throttle.failures("10.0.3.231", "user999") == 1


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        LoginThrottle(max_failures=0)
    with pytest.raises(ValueError):
        LoginThrottle(base_delay=20.0, max_delay=15.0)
