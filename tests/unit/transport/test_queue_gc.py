"""Queue-side garbage collection: finished messages leave the queue, unreferenced blobs the shared store.

Two queue files (two worker processes) in a tmp data directory. The grace period and the
retention are injected through the policy's clock: a clock two hours ahead makes everything
stored so far old. Blobs a mailbox database of this server reads through its fallback stay,
on both engines (db_url), mounted or dismounted; if such a database cannot be read, the shared
store is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from courriel.config.schema import ServerConfig
from courriel.mailbox.store import MailboxDatabase
from courriel.org.model import MailboxDatabase as DatabaseInfo
from courriel.storage.blobs import BlobRef, BlobStore, open_database_blobs
from courriel.transport.queue.gc import Policy, Report, collect_garbage, run_periodically
from courriel.transport.queue.inspect import queue_path
from courriel.transport.queue.schema import messages, recipients
from courriel.transport.queue.store import QueuedMessage, QueuedRecipient, QueueStore, RecipientResult
from tests.unit.mailbox.mailbox_harness import GUID, OWNER
from tests.unit.transport.test_queue_manage import config

LATER = Policy(clock=lambda: time.time() + 2 * 3600)  # grace and retention (1 hour) are over


@pytest.fixture
def cfg(tmp_path: Path) -> ServerConfig:
    return config(tmp_path)


@pytest.fixture
def shared(cfg: ServerConfig) -> BlobStore:
    return BlobStore(cfg.data_dir / "blobs")


def local(status: str = "ready") -> QueuedRecipient:
    return QueuedRecipient(address="bob@example.test", original="bob@example.test", next_hop="mailbox:DB01",
                           delivery_type="SmtpDeliveryToMailbox", target=GUID, status=status)  # fmt: skip


async def enqueue(cfg: ServerConfig, shared: BlobStore, worker: int, mid: str, body: bytes) -> tuple[BlobRef, int]:
    """Commit a message for one local recipient; returns its blob and recipient id."""
    blob = await shared.put(body)
    msg = QueuedMessage(id=mid, digest=blob.digest, size=blob.size, sender="alice@example.test", envelope={},
                        received_at=time.time(), expires_at=time.time() + 86400, recipients=[local()])  # fmt: skip
    store = await QueueStore.open(queue_path(cfg, worker))
    try:
        await store.commit(msg)
    finally:
        await store.close()
    rid = msg.recipients[0].id
    assert rid is not None
    return blob, rid


async def delivered(cfg: ServerConfig, worker: int, rid: int) -> list[str]:
    store = await QueueStore.open(queue_path(cfg, worker))
    try:
        return await store.record([RecipientResult(rid, "delivered", "250 2.0.0 Delivered")])
    finally:
        await store.close()


async def counts(cfg: ServerConfig, worker: int) -> tuple[int, int]:
    store = await QueueStore.open(queue_path(cfg, worker))
    try:
        async with store.reader.connect() as conn:
            m = (await conn.execute(select(func.count()).select_from(messages))).scalar_one()
            r = (await conn.execute(select(func.count()).select_from(recipients))).scalar_one()
            return int(m), int(r)
    finally:
        await store.close()


def shared_sweep(report: Report) -> tuple[int, int, str | None]:
    [sweep] = [s for s in report.sweeps if s.store.startswith("shared store")]
    return sweep.blobs, sweep.bytes, sweep.skipped


async def test_delivered_message_leaves_the_queue_and_its_blob_goes_after_the_grace(
    cfg: ServerConfig, shared: BlobStore
) -> None:
    done, rid = await enqueue(cfg, shared, 0, "M1", b"Subject: delivered\r\n\r\nhello\r\n")
    waiting, _ = await enqueue(cfg, shared, 1, "M2", b"Subject: still queued\r\n\r\nhello\r\n")
    assert await delivered(cfg, 0, rid) == ["M1"]
    assert await counts(cfg, 0) == (0, 0)  # rows go with the last result, in its transaction

    young = await collect_garbage(cfg, shared, [], {})
    assert shared_sweep(young) == (0, 0, None) and shared.owns(done.digest)

    dry = await collect_garbage(cfg, shared, [], {}, policy=LATER, dry_run=True)
    assert shared_sweep(dry) == (1, done.size, None) and shared.owns(done.digest)

    swept = await collect_garbage(cfg, shared, [], {}, policy=LATER)
    assert shared_sweep(swept) == (1, done.size, None)
    assert not shared.owns(done.digest)
    assert shared.owns(waiting.digest)  # referenced by worker 1's queue file
    assert await counts(cfg, 1) == (1, 1)


async def test_finished_leftovers_are_removed_in_batches_after_the_retention(
    cfg: ServerConfig, shared: BlobStore
) -> None:
    """Messages whose recipients are all done but which are still there (written by an older
    Courriel, which kept them) go in batches once the retention is over."""
    store = await QueueStore.open(queue_path(cfg, 0))
    try:
        blob = await shared.put(b"old leftovers")

        def insert(conn: object) -> None:
            now = time.time()
            for n in range(5):
                conn.execute(messages.insert().values(  # type: ignore[attr-defined]
                    id=f"OLD{n}", digest=blob.digest, size=blob.size, sender="", envelope={}, received_at=now,
                    expires_at=now + 86400, source="SMTP"))  # fmt: skip
                conn.execute(recipients.insert().values(  # type: ignore[attr-defined]
                    message=f"OLD{n}", address="x@y.test", original="x@y.test", next_hop="mailbox:DB01",
                    delivery_type="SmtpDeliveryToMailbox", status="delivered", attempts=1, next_attempt=0.0,
                    updated_at=now))  # fmt: skip

        await store.committer.submit(insert)
    finally:
        await store.close()
    await enqueue(cfg, shared, 0, "LIVE", b"still queued")

    assert (await collect_garbage(cfg, shared, [], {})).messages == 0  # within the retention
    assert await counts(cfg, 0) == (6, 6)
    report = await collect_garbage(cfg, shared, [], {}, policy=Policy(clock=LATER.clock, batch=2))
    assert report.messages == 5
    assert await counts(cfg, 0) == (1, 1)  # the live message stays
    assert not shared.owns(blob.digest)  # its blob went in the same run


@pytest.fixture
async def old_database(db_url: str, cfg: ServerConfig, shared: BlobStore) -> AsyncIterator[tuple[str, BlobRef]]:
    """A database whose message's body is only in the shared store (made before it had its own)."""
    body = await shared.put(b"Subject: from an older Courriel\r\n\r\nbody\r\n")
    own = await open_database_blobs(db_url, cfg.data_dir, shared)
    db = await MailboxDatabase.open("DB01", db_url, cfg.data_dir, own)
    try:
        await db.ensure_mailbox(GUID, OWNER)
        await db.append(GUID, "INBOX", body)
    finally:
        await db.close()
        await own.close()
    yield db_url, body


@pytest.mark.parametrize("mounted", [True, False])
async def test_bodies_a_database_reads_through_its_fallback_stay(
    cfg: ServerConfig, shared: BlobStore, old_database: tuple[str, BlobRef], mounted: bool
) -> None:
    url, body = old_database
    orphan = await shared.put(b"nothing references this")
    infos = [DatabaseInfo("DB01", url, "mx1", mounted=mounted), DatabaseInfo("DB09", url, "mx2")]
    report = await collect_garbage(cfg, shared, infos, {}, policy=LATER)
    assert shared_sweep(report) == (1, orphan.size, None)
    assert shared.owns(body.digest) and not shared.owns(orphan.digest)
    assert [s.store for s in report.sweeps if s.store.startswith("database")] == (["database DB01"] if mounted else [])


async def test_a_database_open_in_the_server_is_used_as_it_is(
    cfg: ServerConfig, shared: BlobStore, old_database: tuple[str, BlobRef]
) -> None:
    url, body = old_database
    own = await open_database_blobs(url, cfg.data_dir, shared)
    db = await MailboxDatabase.open("DB01", url, cfg.data_dir, own)
    try:
        report = await collect_garbage(cfg, shared, [], {"DB01": db}, policy=LATER)
    finally:
        await db.close()
        await own.close()
    assert shared_sweep(report) == (0, 0, None) and shared.owns(body.digest)


async def test_an_unreadable_database_leaves_the_shared_store_alone(cfg: ServerConfig, shared: BlobStore) -> None:
    orphan = await shared.put(b"nothing references this, as far as we know")
    broken = cfg.data_dir / "databases" / "DB01.db"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"this is not a SQLite database" * 100)
    infos = [DatabaseInfo("DB01", "sqlite:///databases/DB01.db", "mx1")]
    report = await collect_garbage(cfg, shared, infos, {}, policy=LATER)
    blobs, _, skipped = shared_sweep(report)
    assert blobs == 0 and skipped is not None and "DB01" in skipped
    assert shared.owns(orphan.digest)


async def test_the_periodic_run_goes_on_after_a_failed_run() -> None:
    runs: list[int] = []
    third = asyncio.Event()

    async def run() -> Report:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("the directory is unreachable")
        if len(runs) == 3:
            third.set()
        return Report()

    task = asyncio.create_task(run_periodically(run, first_delay=0, interval=0))
    try:
        await asyncio.wait_for(third.wait(), 30)  # a bound, not a timing
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(runs) >= 3
