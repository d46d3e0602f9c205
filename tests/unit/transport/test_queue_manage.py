"""Queue management over every queue file of a server: retry, suspend, resume, remove, show.

Two queue files (two worker processes) in a tmp data directory; the rows, the tracking events
and the change marks (what wakes the running worker) are checked after each operation.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from courriel.config.schema import ServerConfig
from courriel.core.errors import NotFound
from courriel.storage.blobs import BlobStore
from courriel.transport.queue.inspect import queue_path
from courriel.transport.queue.manage import REMOVED, remove, resume, retry, show, suspend
from courriel.transport.queue.schema import recipients
from courriel.transport.queue.store import QueuedMessage, QueuedRecipient, QueueStore
from courriel.transport.service import changed_mark
from courriel.transport.tracking import search_tracking


def config(root: Path) -> ServerConfig:
    return ServerConfig(
        path=root / "courriel.toml", name="mx1", fqdn="mx1.example.test", roles=frozenset(), site="Default",
        listen=("127.0.0.1",), port_offset=0, data_dir=root, workers=2, directory_url="sqlite:///unused",
        tls_certificate=root / "c.pem", tls_key=root / "k.pem", dns_nameservers=(), dns_timeout=1.0,
        log_level="INFO", log_file=None,
    )  # fmt: skip


def rcpt(address: str, hop: str, status: str = "retry") -> QueuedRecipient:
    return QueuedRecipient(address=address, original=address, next_hop=hop, delivery_type="SmtpRelayToRemote",
                           status=status, next_attempt=time.time() + 3600, last_error="451 4.4.0 later")  # fmt: skip


async def queue(cfg: ServerConfig, worker: int, mid: str, *rcpts: QueuedRecipient) -> None:
    blob = BlobStore(cfg.data_dir / "blobs").put_sync(b"Subject: hello\r\nX-Big: 1\r\n\r\nsecret body\r\n")
    msg = QueuedMessage(id=mid, digest=blob.digest, size=blob.size, sender="s@x.test", envelope={},
                        received_at=time.time(), expires_at=time.time() + 86400, subject="hello",
                        recipients=list(rcpts))  # fmt: skip
    store = await QueueStore.open(queue_path(cfg, worker))
    try:
        await store.commit(msg)
    finally:
        await store.close()


async def rows(cfg: ServerConfig, worker: int) -> dict[str, tuple[str, float]]:
    store = await QueueStore.open(queue_path(cfg, worker))
    try:
        async with store.reader.connect() as conn:
            found = await conn.execute(
                select(recipients.c.address, recipients.c.status, recipients.c.next_attempt)
            )
            return {a: (s, n) for a, s, n in found}
    finally:
        await store.close()


@pytest.fixture
async def cfg(tmp_path: Path) -> ServerConfig:
    c = config(tmp_path)
    await queue(c, 0, "M1", rcpt("a@far.test", "unreachable:far.test"), rcpt("b@ex.com", "smtp:Out:ex.com"))
    await queue(c, 1, "M2", rcpt("c@ex.com", "smtp:Out:ex.com"), rcpt("d@x", "mailbox:DB01", "ready"))
    return c


async def test_retry_one_queue_in_every_file(cfg: ServerConfig) -> None:
    changed = await retry(cfg, "mx1\\ex.com")
    assert sorted(c["identity"] for c in changed) == ["mx1\\M1", "mx1\\M2"]
    now = time.time()
    first, second = await rows(cfg, 0), await rows(cfg, 1)
    assert first["b@ex.com"][1] <= now < first["a@far.test"][1]  # Unreachable is left alone
    assert second["c@ex.com"][1] <= now
    assert changed_mark(queue_path(cfg, 0)).exists() and changed_mark(queue_path(cfg, 1)).exists()
    assert {c["identity"] for c in await retry(cfg, None, all=True)} == {"mx1\\M1", "mx1\\M2"}
    assert (await rows(cfg, 0))["a@far.test"][1] <= time.time()
    with pytest.raises(NotFound, match="no queue nowhere.test"):
        await retry(cfg, "nowhere.test")


async def test_suspend_resume_and_tracking(cfg: ServerConfig) -> None:
    [changed] = await suspend(cfg, "M2", queue="ex.com")
    assert changed["recipients"] == ["c@ex.com"]
    assert {a: s for a, (s, _) in (await rows(cfg, 1)).items()} == {"c@ex.com": "suspended", "d@x": "ready"}
    assert await suspend(cfg, "M2", queue="ex.com") == []
    [changed] = await resume(cfg, "mx1\\ex.com\\M2")
    assert changed["status"] == "ready"
    status, when = (await rows(cfg, 1))["c@ex.com"]
    assert status == "ready" and when <= time.time()
    events = search_tracking(cfg.data_dir / "logs" / "tracking", recipient="c@ex.com")
    assert [(e["event_id"], e["source"]) for e in events] == [("DEFER", "ADMIN"), ("DEFER", "ADMIN")]


async def test_remove_fails_every_recipient_and_drops_the_message(cfg: ServerConfig) -> None:
    [changed] = await remove(cfg, "M1")
    assert changed["status"] == "failed" and sorted(changed["recipients"]) == ["a@far.test", "b@ex.com"]
    assert await rows(cfg, 0) == {}  # the finished message left the queue file
    [drop] = search_tracking(cfg.data_dir / "logs" / "tracking", event_id="DROP")
    assert drop["recipient_status"] == REMOVED and drop["internal_message_id"] == "M1"
    with pytest.raises(NotFound, match="no message M1 in the queues of mx1"):
        await remove(cfg, "M1")


async def test_show_gives_recipients_and_headers_only(cfg: ServerConfig) -> None:
    shown = await show(cfg, "M2")
    assert [(r["address"], r["status"], r["queue"]) for r in shown["recipients"]] == [
        ("c@ex.com", "retry", "ex.com"),
        ("d@x", "ready", "DB01"),
    ]
    assert shown["headers"] == "Subject: hello\r\nX-Big: 1\r\n"
    for op in (show, suspend, resume):
        with pytest.raises(NotFound):
            await op(cfg, "NOPE")
