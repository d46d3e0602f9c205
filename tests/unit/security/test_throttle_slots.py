"""Connection and session limits (services/logins.py SessionCounter over security/slots.py):
in one process, and across processes through the shared file, where a dead process's slots
must come back (it was SIGKILLed, or its pid now belongs to someone else)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from courriel.org.model import ProtocolSettings
from courriel.security.shared_state import SharedState, process_start
from courriel.security.slots import LocalSlots, SharedSlots, Slots
from courriel.services.logins import SessionCounter

LIMITS = ProtocolSettings(max_connections=3, max_connection_from_single_ip=2, max_connections_per_user=2)


@pytest.fixture(params=["local", "shared"])
def slots(request: pytest.FixtureRequest, state: SharedState) -> Slots:
    return LocalSlots() if request.param == "local" else SharedSlots(state)


def test_connection_limits(slots: Slots) -> None:
    counter = SessionCounter(slots, "imap-proxy")
    assert counter.admit("192.0.2.1", LIMITS) and counter.admit("192.0.2.1", LIMITS)
    assert not counter.admit("192.0.2.1", LIMITS)  # MaxConnectionFromSingleIP
    assert counter.admit("192.0.2.2", LIMITS)
    assert not counter.admit("192.0.2.3", LIMITS)  # MaxConnections
    assert counter.total == 3
    counter.leave("192.0.2.1")
    assert counter.admit("192.0.2.3", LIMITS)
    assert counter.total == 3


def test_a_back_end_counts_addresses_without_limiting_them(slots: Slots) -> None:
    counter = SessionCounter(slots, "imap-backend")
    assert all(counter.admit("127.0.0.1", LIMITS, per_ip=False) for _ in range(3))
    assert not counter.admit("127.0.0.1", LIMITS, per_ip=False)
    for _ in range(3):
        counter.leave("127.0.0.1")
    assert counter.total == 0


def test_sessions_per_user(slots: Slots) -> None:
    counter = SessionCounter(slots, "pop3-backend")
    assert counter.enter_user("guid-a", LIMITS) and counter.enter_user("guid-a", LIMITS)
    assert not counter.enter_user("guid-a", LIMITS)
    assert counter.enter_user("guid-b", LIMITS)
    assert counter.sessions_of("guid-a") == 2
    counter.leave_user("guid-a")
    assert counter.sessions_of("guid-a") == 1
    assert counter.enter_user("guid-a", LIMITS)


def test_services_count_apart(state: SharedState) -> None:
    shared = SharedSlots(state)
    proxy, backend = SessionCounter(shared, "imap-proxy"), SessionCounter(shared, "imap-backend")
    assert proxy.enter_user("guid-a", LIMITS) and proxy.enter_user("guid-a", LIMITS)
    # One proxied session counts at the front end and at the back end, each against its own limit.
    assert backend.enter_user("guid-a", LIMITS) and backend.enter_user("guid-a", LIMITS)
    assert not proxy.enter_user("guid-a", LIMITS) and not backend.enter_user("guid-a", LIMITS)


def test_counters_of_two_workers_share_the_limits(tmp_path: Path) -> None:
    one, two = SharedState(tmp_path), SharedState(tmp_path)
    try:
        first, second = (
            SessionCounter(SharedSlots(one), "imap-proxy"),
            SessionCounter(SharedSlots(two), "imap-proxy"),
        )
        assert first.enter_user("guid-a", LIMITS) and second.enter_user("guid-a", LIMITS)
        assert not first.enter_user("guid-a", LIMITS) and not second.enter_user("guid-a", LIMITS)
        second.leave_user("guid-a")
        assert first.enter_user("guid-a", LIMITS)
    finally:
        one.close()
        two.close()


def test_share_moves_an_unused_counter(state: SharedState) -> None:
    counter = SessionCounter()
    counter.share(SharedSlots(state), "pop3-proxy")
    assert counter.enter_user("guid-a", LIMITS)
    assert SessionCounter(SharedSlots(state), "pop3-proxy").sessions_of("guid-a") == 1
    busy = SessionCounter()
    assert busy.admit("192.0.2.1", LIMITS)
    with pytest.raises(RuntimeError):
        busy.share(SharedSlots(state), "pop3-proxy")


def _hold_sessions(directory: str, count: int, ready: Connection) -> None:
    counter = SessionCounter(SharedSlots(SharedState(Path(directory))), "imap-backend")
    ready.send([counter.enter_user("guid-a", LIMITS) for _ in range(count)])
    signal.pause()  # until killed


def test_the_slots_of_a_killed_process_come_back(state: SharedState) -> None:
    counter = SessionCounter(SharedSlots(state), "imap-backend")
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    holder = context.Process(target=_hold_sessions, args=(str(state.directory), 2, theirs))
    holder.start()
    try:
        assert ours.poll(30) and ours.recv() == [True, True]
        assert not counter.enter_user("guid-a", LIMITS)  # the holder is alive: its slots count
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
        assert counter.enter_user("guid-a", LIMITS)  # reaped at the refusal that would have been
        assert counter.sessions_of("guid-a") == 1
    finally:
        holder.kill()
        holder.join(30)


def test_a_zombie_holds_nothing(state: SharedState) -> None:
    counter = SessionCounter(SharedSlots(state), "pop3-backend")
    pid = os.fork()
    if pid == 0:
        try:
            child = SessionCounter(SharedSlots(state), "pop3-backend")  # the parent's state, forked
            ok = child.enter_user("guid-a", LIMITS) and child.enter_user("guid-a", LIMITS)
        finally:
            os._exit(0 if ok else 1)
    try:
        for _ in range(500):  # until the child is a zombie (bounded: 5 s)
            if process_start(pid) is None:
                break
            time.sleep(0.01)
        assert counter.enter_user("guid-a", LIMITS)  # the child exited, not yet waited for
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_recycled_pid_does_not_keep_a_dead_owners_slots(state: SharedState) -> None:
    pid, started = state.owner
    assert started > 0  # Linux: the start time is known
    with state.write() as conn:  # as if an earlier process with our pid had held them
        conn.execute(
            "INSERT INTO slots (scope, kind, key, pid, started, n) VALUES ('imap-proxy', 'user', 'guid-a', ?, ?, 2)",
            (pid, started - 1),
        )
    counter = SessionCounter(SharedSlots(state), "imap-proxy")
    assert counter.sessions_of("guid-a") == 2
    assert counter.enter_user("guid-a", LIMITS)
    assert counter.sessions_of("guid-a") == 1


def test_opening_reaps_the_dead(tmp_path: Path) -> None:
    first = SharedState(tmp_path)
    with first.write() as conn:
        conn.execute(
            "INSERT INTO slots (scope, kind, key, pid, started, n) VALUES ('imap-proxy', 'all', '', 999999999, 1, 7)"
        )
    first.close()
    again = SharedState(tmp_path)
    try:
        assert SessionCounter(SharedSlots(again), "imap-proxy").total == 0
    finally:
        again.close()


def test_a_refusal_names_the_full_claim(slots: Slots) -> None:
    claims = (("all", "", 3), ("ip", "192.0.2.1", 1))
    assert slots.take("smtp", claims) is None
    assert slots.take("smtp", claims) == ("ip", "192.0.2.1", 1)  # and nothing was taken
    assert slots.held("smtp", "all", "") == 1
    slots.give_back("smtp", (("all", ""), ("ip", "192.0.2.1")))
    assert slots.held("smtp", "all", "") == 0 and slots.held("smtp", "ip", "192.0.2.1") == 0
