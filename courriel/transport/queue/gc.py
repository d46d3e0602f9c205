"""Garbage collection of a Mailbox server's storage: finished queue messages and unreferenced blobs.

The queue removes a message in the transaction that records its last recipient's final result
and the DSNs it calls for (queue/store.py), as Exchange drops a message from its queue once every
recipient is done (the tracking log keeps the history). `collect_garbage` removes, in batches,
any finished message still there after `retention`, then sweeps:

- each database mounted here: bodies none of its messages references (mailbox/blobgc.py);
- the server's shared store `data_dir/blobs`: blobs no queue file of the server references
  (every worker's) and no database of this server reads through its fallback. If any database
  of this server, mounted or not, cannot be read, the shared store is left alone.

A blob younger than `grace` is never deleted: the queue commits after the blob's fsync, and
a delivery commits after linking the body (storage/blobs.py says how a re-used blob stays young).
Worker 0 of each Mailbox server runs it every hour (`run_periodically`); `courriel maintenance
gc` runs it on demand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from courriel.config.schema import ServerConfig
from courriel.mailbox.blobgc import Database, database_exists, fallback_references, opened, sweep_database
from courriel.org.model import MailboxDatabase as DatabaseInfo
from courriel.storage.blobs import WRITE_GRACE, BlobStore, Sweep, sweep_unreferenced
from courriel.transport.queue.inspect import queue_paths
from courriel.transport.queue.store import QueueStore

log = logging.getLogger(__name__)
GRACE = WRITE_GRACE  # seconds: a blob written more recently is never deleted
RETENTION = 3600.0  # seconds a finished message may stay before the collector removes it
BATCH = 500  # messages per removal transaction
MAX_BATCHES = 10_000  # per queue file and run: bounds one run
FIRST_DELAY = 300.0  # seconds after start-up before the first periodic run
INTERVAL = 3600.0


@dataclass(frozen=True, slots=True)
class Policy:
    grace: float = GRACE
    retention: float = RETENTION
    batch: int = BATCH
    clock: Callable[[], float] = time.time


@dataclass(slots=True)
class Report:
    messages: int = 0  # finished messages removed from the queue files
    sweeps: list[Sweep] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.messages} finished queue message(s)"]
        for s in self.sweeps:
            parts.append(f"{s.store}: skipped ({s.skipped})" if s.skipped else f"{s.store}: {s.blobs} blob(s), {s.bytes} bytes")
        return "; ".join(parts)


async def remove_finished(paths: Iterable[Path], before: float, *, batch: int = BATCH, dry_run: bool = False) -> int:
    """Remove the messages of these queue files finished (every recipient done) before `before`."""
    removed = 0
    for path in paths:
        store = await QueueStore.open(path)
        try:
            if dry_run:
                removed += len(await store.finished(before, limit=batch * MAX_BATCHES))
                continue
            for _ in range(MAX_BATCHES):
                ids = await store.finished(before, limit=batch)
                removed += await store.forget(ids, before)
                if len(ids) < batch:
                    break
        finally:
            await store.close()
    return removed


async def queue_references(config: ServerConfig) -> set[str]:
    """Every blob referenced by a queue file of this server (each worker has one)."""
    found: set[str] = set()
    for path in queue_paths(config):
        store = await QueueStore.open(path)
        try:
            found |= await store.digests()
        finally:
            await store.close()
    return found


def _ours(info: DatabaseInfo, config: ServerConfig) -> bool:
    return (info.server or "").casefold() == config.name.casefold()


async def collect_garbage(
    config: ServerConfig,
    shared: BlobStore,
    databases: Iterable[DatabaseInfo],
    mounted: Mapping[str, Database],
    *,
    policy: Policy = Policy(),
    dry_run: bool = False,
) -> Report:
    """One collection on this server. `databases`: the directory's; `mounted`: those open in this process."""
    now = policy.clock()
    before = now - policy.grace
    report = Report(await remove_finished(queue_paths(config), now - policy.retention, batch=policy.batch, dry_run=dry_run))
    ours = {info.name: info for info in databases if _ours(info, config)}
    readable: list[Database] = []
    unreadable: list[str] = []
    async with AsyncExitStack() as stack:
        for name in sorted(set(ours) | set(mounted)):
            db = mounted.get(name)
            info = ours.get(name)
            if db is None and info is not None and database_exists(info.url, config.data_dir):
                try:
                    db = await stack.enter_async_context(opened(info.name, info.url, config.data_dir, shared))
                except Exception as exc:
                    log.warning("blob collection: mailbox database %s cannot be opened: %s", name, exc)
                    unreadable.append(name)
                    continue
            if db is None:
                continue
            readable.append(db)
            if info is None or info.mounted:  # a dismounted database's store waits for its remount
                report.sweeps.append(await _guarded(sweep_database(db, shared, before, dry_run=dry_run), f"database {name}"))

        shared_label = f"shared store {shared.root}"
        if unreadable:
            report.sweeps.append(Sweep(shared_label, skipped=f"cannot read database(s) {', '.join(unreadable)}"))
            return report

        async def references() -> set[str]:
            return await queue_references(config) | await fallback_references(readable, shared)

        report.sweeps.append(
            await _guarded(sweep_unreferenced(shared, shared_label, references, before, dry_run=dry_run), shared_label)
        )
    return report


async def _guarded(sweep: Awaitable[Sweep], label: str) -> Sweep:
    """A failed sweep of one store is reported, and the others still run."""
    try:
        return await sweep
    except Exception as exc:
        log.exception("blob collection of %s failed", label)
        return Sweep(label, skipped=f"failed: {exc}")


async def run_periodically(
    run: Callable[[], Awaitable[Report]], *, first_delay: float = FIRST_DELAY, interval: float = INTERVAL
) -> None:
    """Run a collection now and then, for ever (a task the Mailbox role cancels at stop)."""
    await asyncio.sleep(first_delay)
    while True:
        try:
            report = await run()
        except Exception:
            log.exception("storage garbage collection failed")
        else:
            log.info("storage garbage collection: %s", report.summary())
        await asyncio.sleep(interval)
