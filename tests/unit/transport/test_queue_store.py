"""The queue: commit, due recipients, durable per-recipient results, finished messages removed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from courriel.transport.queue.store import QueuedMessage, QueuedRecipient, QueueStore, RecipientResult


def message(mid: str, *rcpts: str) -> QueuedMessage:
    return QueuedMessage(
        id=mid, digest="d" * 64, size=10, sender="s@x.test", envelope={"recipients": list(rcpts)},
        received_at=time.time(), expires_at=time.time() + 60,
        recipients=[QueuedRecipient(address=r, original=r, next_hop="mailbox:DB01", delivery_type="SmtpDeliveryToMailbox", target=r) for r in rcpts],
    )


async def test_commit_then_results_remove_finished_messages(tmp_path: Path) -> None:
    store = await QueueStore.open(tmp_path / "q.db")
    try:
        msgs = [message(f"M{i}", f"a{i}@x", f"b{i}@x") for i in range(20)]
        await asyncio.gather(*(store.commit(m) for m in msgs))  # group-committed together
        assert store.committer.batches < 20
        due = await store.due(time.time())
        assert len(due) == 40
        first = msgs[0]
        ids = [r.id for r in first.recipients]
        assert all(isinstance(i, int) for i in ids)
        assert await store.record([RecipientResult(ids[0], "delivered")]) == []
        assert await store.record([RecipientResult(ids[1], "retry", "451 busy", time.time() + 600)]) == []
        assert len(await store.due(time.time())) == 38  # the retry is not due yet
        assert await store.record([RecipientResult(ids[1], "failed", "550 no")]) == ["M0"]
        assert (await store.active_counts()).get("ready") == 38
    finally:
        await store.close()
    reopened = await QueueStore.open(tmp_path / "q.db")  # durable across a reopen
    try:
        assert len(await reopened.due(time.time())) == 38
    finally:
        await reopened.close()
