"""What `courriel queue list` and `queue messages` show (Get-Queue / Get-Message).

A queue is the set of active recipients that share a next hop (Exchange's NextHopSolutionKey);
its status is Suspended when all are suspended, Retry when the last attempt failed, else Ready.
Reads the queue file directly, so it works while the server runs (SQLite WAL readers never block).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from courriel.config.schema import ServerConfig
from courriel.transport.queue.schema import ACTIVE, messages, recipients
from courriel.transport.queue.store import QueueStore


def queue_path(config: ServerConfig, worker: int = 0) -> Path:
    """Each worker process of a server has its own queue file (worker 0: queue.db)."""
    return config.data_dir / "queue" / ("queue.db" if worker == 0 else f"queue-{worker}.db")


def queue_paths(config: ServerConfig) -> list[Path]:
    """Every queue file of the server, whatever its number of workers now."""
    return sorted((config.data_dir / "queue").glob("queue*.db"))


def queue_name(next_hop: str) -> str:
    """`mailbox:DB01` → `DB01`; `smtp:Internet:example.com` → `example.com`; `unreachable:x` → `Unreachable`."""
    kind, _, rest = next_hop.partition(":")
    if kind == "unreachable":
        return "Unreachable"
    return rest.rsplit(":", 1)[-1]


def iso_time(ts: float) -> str | None:
    """A queue timestamp as ISO 8601 in UTC, to the second; None for 0 (not set)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


async def _rows(config: ServerConfig) -> list[Any]:
    rows: list[Any] = []
    for path in queue_paths(config):
        rows += await _file_rows(path)
    return rows


async def _file_rows(path: Path) -> list[Any]:
    store = await QueueStore.open(path)
    try:
        query = (
            select(recipients, messages.c.sender, messages.c.size, messages.c.message_id, messages.c.subject,
                   messages.c.received_at, messages.c.expires_at)
            .join(messages, messages.c.id == recipients.c.message)
            .where(recipients.c.status.in_(ACTIVE))
            .order_by(recipients.c.message, recipients.c.id)
        )
        async with store.reader.connect() as conn:
            return list((await conn.execute(query)).mappings().all())
    finally:
        await store.close()


async def list_queues(config: ServerConfig) -> list[dict[str, Any]]:
    groups: dict[str, list[Any]] = {}
    for row in await _rows(config):
        groups.setdefault(row["next_hop"], []).append(row)
    now = time.time()
    out = []
    for hop, rows in sorted(groups.items()):
        statuses = {r["status"] for r in rows}
        status = "Suspended" if statuses == {"suspended"} else "Retry" if "retry" in statuses else "Ready"
        errors = [r["last_error"] for r in rows if r["last_error"]]
        retries = [r["next_attempt"] for r in rows if r["status"] == "retry" and r["next_attempt"] > now]
        out.append(
            {
                "identity": f"{config.name}\\{queue_name(hop)}",
                "delivery_type": rows[0]["delivery_type"],
                "next_hop": hop.split(":", 1)[1],
                "status": status,
                "message_count": len({r["message"] for r in rows}),
                "last_error": errors[-1] if errors else None,
                "next_retry": iso_time(min(retries)) if retries else None,
            }
        )
    return out


async def list_messages(config: ServerConfig, queue: str | None = None) -> list[dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for row in await _rows(config):
        name = queue_name(row["next_hop"])
        if queue is not None and queue.split("\\")[-1].lower() != name.lower():
            continue
        key = (row["message"], row["next_hop"])
        entry = out.setdefault(
            key,
            {
                "identity": f"{config.name}\\{name}\\{row['message']}",
                "from": row["sender"] or "<>",
                "recipients": [],
                "status": row["status"],
                "size": row["size"],
                "message_id": row["message_id"],
                "subject": row["subject"],
                "received": iso_time(row["received_at"]),
                "expires": iso_time(row["expires_at"]),
                "last_error": row["last_error"],
            },
        )
        entry["recipients"].append(row["address"])
    return list(out.values())
