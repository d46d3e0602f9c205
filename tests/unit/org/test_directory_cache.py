"""The in-memory directory snapshot and the cache that follows the version counter across processes."""

from __future__ import annotations

import asyncio
import logging

import pytest

from courriel.org.cache import DirectoryCache
from courriel.org.directory import Directory
from courriel.org.snapshot import DirectorySnapshot


async def test_snapshot_lookups(org: Directory) -> None:
    alice = await org.new_mailbox("Alice@example.test", "Alice", None, addresses=["al@example.test"])
    team = await org.new_group("team@example.test", "Team", ["alice@example.test"])
    await org.new_send_connector("Internet", address_spaces=[["*", 1]])
    await org.set_protocol_settings("pop", enabled=True)
    await org.add_accepted_domain("relay.example", "InternalRelay")

    cache = DirectoryCache(org)
    with pytest.raises(RuntimeError, match="load"):
        _ = cache.snapshot
    snap = await cache.load()
    assert snap.version == await org.version()
    assert snap.organization == "Contoso"
    assert snap.accepted_domain("EXAMPLE.test") is not None
    assert snap.accepted_domain("sub.example.test") is None  # exact match only
    assert snap.default_domain() is not None and snap.default_domain().name == "example.test"  # type: ignore[union-attr]
    assert snap.recipient("ALICE@EXAMPLE.TEST") == alice
    assert snap.recipient("Al@Example.Test") == alice
    assert snap.recipient("nobody@example.test") is None
    assert snap.recipient_by_id(alice.id) == alice
    assert snap.members(team.id) == (alice,)
    assert snap.members(alice.id) == ()
    assert {c.name for c in snap.receive_connectors("ex01")} >= {"Default Frontend EX01", "Default EX01"}
    assert snap.receive_connectors("nope") == ()
    assert [c.name for c in snap.send_connectors()] == ["Internet"]
    db01 = snap.database("db01")
    assert db01 is not None and db01.server == "EX01"
    ex01 = snap.server("EX01")
    assert ex01 is not None and ex01.roles == ("client-access", "mailbox")
    assert [s.name for s in snap.servers()] == ["EX01"]
    assert snap.pop_settings.enabled and not snap.imap_settings.enabled
    assert snap.transport_config.max_recipient_envelope_limit == 500
    with pytest.raises(TypeError):
        snap._by_address["x@example.test"] = alice  # type: ignore[index]


async def test_cache_sees_a_change_made_by_another_directory_within_a_poll(
    org: Directory, db_url: str
) -> None:
    cache = DirectoryCache(org)
    await cache.load()
    seen: list[DirectorySnapshot] = []
    changed = asyncio.Event()

    async def on_change(snapshot: DirectorySnapshot) -> None:
        seen.append(snapshot)
        changed.set()

    def broken(_: DirectorySnapshot) -> None:
        raise ValueError("a broken subscriber must not stop the others")

    cache.subscribe(broken)
    cache.subscribe(on_change)
    unsubscribed: list[int] = []
    cache.subscribe(lambda snap: unsubscribed.append(snap.version))()  # subscribes, then unsubscribes
    assert not await cache.refresh()  # nothing changed yet
    poller = asyncio.create_task(cache.run(poll_interval=0.05))
    other = await Directory.open(db_url)  # as the `courriel` command in another process would
    try:
        await other.new_mailbox("late@example.test", "Late", None)
        await asyncio.wait_for(changed.wait(), timeout=5)
    finally:
        poller.cancel()
        await other.close()
    assert cache.snapshot.recipient("late@example.test") is not None
    assert seen[-1] is cache.snapshot
    assert unsubscribed == []


class FailingDirectory:
    """Stands in for a directory whose database went away."""

    def __init__(self, snapshot: DirectorySnapshot) -> None:
        self.snapshot_value = snapshot
        self.calls = 0

    async def version(self) -> int:
        self.calls += 1
        raise OSError("connection refused")

    async def snapshot(self) -> DirectorySnapshot:
        return self.snapshot_value


async def test_a_failed_poll_keeps_the_last_snapshot(
    org: Directory, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot = await org.snapshot()
    failing = FailingDirectory(snapshot)
    cache = DirectoryCache(failing)  # type: ignore[arg-type]
    await cache.load()
    calls: list[int] = []
    cache.subscribe(lambda snap: calls.append(snap.version))
    with caplog.at_level(logging.WARNING, logger="courriel.org.cache"):
        poller = asyncio.create_task(cache.run(poll_interval=0.01))
        for _ in range(200):
            if failing.calls >= 3:
                break
            await asyncio.sleep(0.01)
        poller.cancel()
    assert failing.calls >= 3
    assert cache.snapshot is snapshot and calls == []
    assert "directory poll failed" in caplog.text
