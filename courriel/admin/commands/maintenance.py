"""Storage maintenance for the admin faces: garbage collection of the queue and the blob stores.

The same collection worker 0 of each Mailbox server runs every hour (transport/queue/gc.py), on
demand and for this server only; safe while the server runs (young blobs are never touched).
"""

from __future__ import annotations

from typing import Any

from courriel.admin.commands.context import Admin
from courriel.admin.commands.databases import shared_blobs


async def collect_garbage(admin: Admin, *, dry_run: bool = False) -> dict[str, Any]:
    """Remove finished queue messages and unreferenced blobs; what was (or would be) removed."""
    from courriel.transport.queue.gc import collect_garbage as collect

    async with shared_blobs(admin.config) as shared:
        report = await collect(
            admin.config, shared, await admin.directory.list_databases(), {}, dry_run=dry_run
        )
    return {
        "dry_run": dry_run,
        "queue_messages": report.messages,
        "stores": [
            {
                "store": s.store,
                "blobs": s.blobs,
                "bytes": s.bytes,
                "temporary_files": s.temporary,
                "skipped": s.skipped,
            }
            for s in report.sweeps
        ],
    }
