"""The login throttle over the server's shared file: the same rules as in one process, and
counts that every worker process sees (security/shared_state.py)."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from courriel.security.shared_state import SharedState
from courriel.security.throttle import LoginThrottle
from tests.unit.security.test_login_throttle import (  # the same behaviour, over the shared file
    Clock,
    test_blocked_after_max_failures_by_address,
    test_blocked_after_max_failures_by_username,
    test_delay_doubles_up_to_the_cap,
    test_empty_username_counts_only_against_the_address,
    test_failures_expire_after_the_window,
    test_ipv6_counted_by_prefix,
    test_no_failures_no_delay,
    test_stale_keys_are_dropped,
    test_success_clears_a_users_typos,
    test_success_forgives_own_failures_only,
)

__all__ = [
    "test_blocked_after_max_failures_by_address",
    "test_blocked_after_max_failures_by_username",
    "test_delay_doubles_up_to_the_cap",
    "test_empty_username_counts_only_against_the_address",
    "test_failures_expire_after_the_window",
    "test_ipv6_counted_by_prefix",
    "test_no_failures_no_delay",
    "test_stale_keys_are_dropped",
    "test_success_clears_a_users_typos",
    "test_success_forgives_own_failures_only",
]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock: Clock, state: SharedState) -> LoginThrottle:
    return LoginThrottle(
        max_failures=5, window=300.0, base_delay=1.0, max_delay=15.0, clock=clock, shared=state
    )


def test_key_count_is_capped(clock: Clock, state: SharedState) -> None:
    throttle = LoginThrottle(clock=clock, max_keys=50, shared=state)
    for i in range(300):
        clock.now += 0.01
        throttle.record_failure(f"10.0.{i // 256}.{i % 256}", f"user{i}")
        assert len(throttle) <= 50
    # The most recent failures are the ones kept.
    assert throttle.failures("10.0.1.43", "user299") == 1
    assert throttle.failures("10.0.0.0", "user0") == 0


def test_a_key_keeps_only_its_last_failures(throttle: LoginThrottle, state: SharedState) -> None:
    for _ in range(40):
        throttle.record_failure("192.0.2.1", "alice")
    assert throttle.failures("192.0.2.1", "alice") == 5
    assert state.read("SELECT count(*) FROM login_failures") == [(10,)]  # 5 by address, 5 by name


def test_failures_are_seen_through_another_connection(tmp_path: Path, clock: Clock) -> None:
    one, two = SharedState(tmp_path), SharedState(tmp_path)
    try:
        first = LoginThrottle(clock=clock, shared=one)
        second = LoginThrottle(clock=clock, shared=two)
        for _ in range(3):
            first.record_failure("192.0.2.7", "alice")
        for _ in range(2):
            second.record_failure("192.0.2.7", "bob")
        assert first.blocked("192.0.2.7", "carol") and second.blocked("192.0.2.7", "carol")
        second.record_success("192.0.2.7", "bob")  # forgives bob's own failures only
        assert first.failures("192.0.2.7", "carol") == 3
    finally:
        one.close()
        two.close()


def _fail_logins(directory: str, count: int) -> None:
    throttle = LoginThrottle(shared=SharedState(Path(directory)))
    for _ in range(count):
        throttle.record_failure("198.51.100.9", "mallory")


def test_failures_in_other_processes_count_here(tmp_path: Path) -> None:
    throttle = LoginThrottle(shared=SharedState(tmp_path))
    throttle.record_failure("198.51.100.9", "mallory")  # opened here before the others fork
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_fail_logins, args=(str(tmp_path), 2)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert throttle.failures("198.51.100.9", "someone") == 5
    assert throttle.blocked("198.51.100.9", "someone")


def test_a_new_boot_starts_afresh(tmp_path: Path, clock: Clock) -> None:
    before = SharedState(tmp_path, boot_id="boot-a")
    LoginThrottle(clock=clock, shared=before).record_failure("192.0.2.1", "alice")
    before.close()
    after = SharedState(tmp_path, boot_id="boot-b")
    try:
        assert LoginThrottle(clock=clock, shared=after).failures("192.0.2.1", "alice") == 0
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".sqlite3")) == ["boot-b.sqlite3"]
    finally:
        after.close()


def test_the_file_is_the_servers_alone(state: SharedState) -> None:
    state.read("SELECT 1")
    assert os.stat(state.path).st_mode & 0o077 == 0


def test_a_server_that_cannot_keep_the_file_fails_at_open(tmp_path: Path) -> None:
    (tmp_path / "limits").write_text("not a directory")
    with pytest.raises(OSError):
        SharedState(tmp_path / "limits").open()
