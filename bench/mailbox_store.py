"""Mailbox store throughput: deliveries per second and folder snapshot time, on SQLite and PostgreSQL.

    .venv/bin/python bench/mailbox_store.py [--messages 5000] [--rounds 3] [--pg postgresql://…/postgres]

Figures (medians over rounds, printed as a table):
- single: one delivery at a time (each waits for its own commit: fsync-bound);
- concurrent: 50 tasks calling deliver() at once (coalesced into shared transactions);
- batched: deliver_many() with 100 messages per call;
- snapshot: one 10,000-message folder read whole (uid, flags, keywords, modseq).
Message bytes are written to the blob store before timing starts (the transport queue has
already stored them when it delivers), so the figures are the store's SQL work. PostgreSQL
runs only when the admin URL answers; a throw-away database is created and dropped. This VM is
shared: compare figures from the same run only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from courriel.mailbox.model import DeliveryRequest
from courriel.mailbox.store import MailboxDatabase
from courriel.storage.blobs import BlobRef, BlobStore

CONCURRENCY = 50
BATCH = 100
SNAPSHOT_SIZE = 10_000
DEFAULT_PG = os.environ.get("COURRIEL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


class Run:
    """One fresh database; each measurement delivers to its own mailbox."""

    def __init__(self, store: MailboxDatabase, blobs: list[BlobRef]) -> None:
        self.store = store
        self.blobs = blobs
        self.counter = 0

    def requests(self, guid: str, count: int) -> list[DeliveryRequest]:
        now = datetime.now(UTC)
        reqs = []
        for n in range(count):
            self.counter += 1
            blob = self.blobs[n % len(self.blobs)]
            reqs.append(DeliveryRequest(guid, f"{guid}@example.test", blob, f"key-{self.counter}", now))
        return reqs

    async def single(self, count: int) -> float:
        reqs = self.requests(f"single-{uuid.uuid4().hex}", count)
        began = time.perf_counter()
        for req in reqs:
            await self.store.deliver(req)
        return count / (time.perf_counter() - began)

    async def concurrent(self, count: int) -> float:
        queue = iter(self.requests(f"conc-{uuid.uuid4().hex}", count))

        async def worker() -> None:
            for req in queue:
                await self.store.deliver(req)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - began)

    async def batched(self, count: int) -> float:
        reqs = self.requests(f"batch-{uuid.uuid4().hex}", count)
        began = time.perf_counter()
        for start in range(0, count, BATCH):
            await self.store.deliver_many(reqs[start : start + BATCH])
        return count / (time.perf_counter() - began)

    async def snapshot_ms(self, repeats: int = 20) -> float:
        guid = f"snap-{uuid.uuid4().hex}"
        reqs = self.requests(guid, SNAPSHOT_SIZE)
        for start in range(0, SNAPSHOT_SIZE, 2_500):
            await self.store.deliver_many(reqs[start : start + 2_500])
        inbox = await self.store.get_folder(guid, "INBOX")
        assert inbox is not None
        await self.store.snapshot(inbox.id)
        timings = []
        for _ in range(repeats):
            began = time.perf_counter()
            snap = await self.store.snapshot(inbox.id)
            timings.append(time.perf_counter() - began)
            assert len(snap.uids) == SNAPSHOT_SIZE
        return statistics.median(timings) * 1000


async def measure(url: str, base: Path, messages: int, rounds: int) -> dict[str, float]:
    blobs = BlobStore(base / "blobs")
    refs = [blobs.put_sync(os.urandom(1024) + b"\r\n" * 512) for _ in range(64)]  # about 2 KB each
    store = await MailboxDatabase.open("bench", url, base, blobs)
    try:
        run = Run(store, refs)
        await run.batched(500)  # warm-up: schema, pools, compiled statements
        samples: dict[str, list[float]] = {
            "single/s": [],
            "concurrent/s": [],
            "batched/s": [],
            "snapshot ms": [],
        }
        steps: list[tuple[str, Callable[[], Awaitable[float]]]] = [
            ("single/s", lambda: run.single(max(50, messages // 20))),
            ("concurrent/s", lambda: run.concurrent(messages)),
            ("batched/s", lambda: run.batched(messages)),
            ("snapshot ms", run.snapshot_ms),
        ]
        for _ in range(rounds):
            for name, step in steps:
                samples[name].append(await step())
        return {name: statistics.median(values) for name, values in samples.items()}
    finally:
        await store.close()


async def postgres_database(admin_url: str) -> str | None:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(admin_url), 3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return None
    name = f"courriel_bench_{uuid.uuid4().hex[:10]}"
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def drop_database(admin_url: str, url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="deliveries per concurrent/batched run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pg", default=DEFAULT_PG, help="PostgreSQL admin URL (a database is created and dropped)"
    )
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mbx-bench-") as tmp:
        base = Path(tmp)
        results["sqlite"] = await measure("sqlite:///mailbox.db", base / "sqlite", args.messages, args.rounds)
        pg_url = await postgres_database(args.pg)
        if pg_url is None:
            print(f"PostgreSQL not reachable at {args.pg}: skipped")
        else:
            try:
                results["postgresql"] = await measure(pg_url, base / "pg", args.messages, args.rounds)
            finally:
                await drop_database(args.pg, pg_url)
    columns = ["single/s", "concurrent/s", "batched/s", "snapshot ms"]
    print(f"{'engine':12s}" + "".join(f"{c:>15s}" for c in columns))
    for engine, figures in results.items():
        print(f"{engine:12s}" + "".join(f"{figures[c]:15.1f}" for c in columns))


if __name__ == "__main__":
    asyncio.run(main())
