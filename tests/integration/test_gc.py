"""Storage garbage collection against a running server (SQLite, then PostgreSQL).

Alice sends bob a message (delivered: its queue rows go at once, its body stays in the queue's
blob store until the grace period is over) and one to an external domain (waiting in
Unreachable: its blob stays). `courriel maintenance gc` run now removes nothing young; the same
collection with a clock two hours ahead (the grace period injected) removes the delivered
message's queue blob while bob still reads his copy from the database's own store, and keeps the
queued one until the administrator removes that message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

from courriel.org.directory import Directory
from courriel.storage.blobs import BlobStore
from courriel.transport.queue.gc import Policy, Report, collect_garbage
from tests.integration.mailserver import MailServer
from tests.integration.server_state import cli, delivered, found, run, token
from tests.integration.test_queue_management import queued
from tests.integration.test_submission import queue_id, submission

ALICE = "alice@example.test"
BOB = "bob@example.test"
LATER = Policy(clock=lambda: time.time() + 2 * 3600)


def later_gc(server: MailServer) -> Report:
    """One collection as worker 0 runs it, with the grace period and retention over."""

    async def go() -> Report:
        config = server.config
        directory = await Directory.open(config.directory_url, config.data_dir)
        shared = BlobStore(config.data_dir / "blobs")
        try:
            infos = await directory.list_databases()
            return await collect_garbage(config, shared, infos, {}, policy=LATER)
        finally:
            await shared.close()
            await directory.close()

    return asyncio.run(go())


def test_gc_removes_what_delivery_left_and_keeps_what_waits(mailserver: MailServer) -> None:
    shared = BlobStore(mailserver.config.data_dir / "blobs")
    mark = token("gc")
    body = f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: {mark}\r\n\r\nbody {mark}\r\n".encode()
    with submission(mailserver) as c:
        delivered_id = queue_id(c.transaction(ALICE, [BOB], body)[-1])
    [stored] = delivered(mailserver, BOB, mark)
    digest = hashlib.sha256(stored).hexdigest()  # the blob's name is its bytes' SHA-256
    _, _, waiting_id = queued(mailserver)
    assert shared.owns(digest)
    assert mailserver.courriel("queue", "show", delivered_id).returncode == 1  # finished: gone

    now = json.loads(run(mailserver, "maintenance", "gc", "--json"))
    assert now["dry_run"] is False
    assert all(s["blobs"] == 0 and s["skipped"] is None for s in now["stores"]), now
    assert shared.owns(digest)
    text = run(mailserver, "maintenance", "gc", "--dry-run")
    assert "would remove 0 finished message(s)" in text and "shared store" in text

    report = later_gc(mailserver)
    assert all(s.skipped is None for s in report.sweeps), report
    assert not shared.owns(digest)
    assert found(mailserver, BOB, mark) == [stored]  # bob's copy lives in the database's store
    shown = cli(mailserver, "queue", "show", waiting_id)
    assert "Subject: " in shown["headers"]  # the waiting message's blob is still there
    waiting = set(shared.digests())
    assert waiting  # the only message left in the queue

    cli(mailserver, "queue", "remove", waiting_id)
    report = later_gc(mailserver)
    assert mailserver.courriel("queue", "show", waiting_id).returncode == 1
    assert waiting.isdisjoint(shared.digests())
    assert sum(s.blobs for s in report.sweeps if s.store.startswith("shared")) == len(waiting)
