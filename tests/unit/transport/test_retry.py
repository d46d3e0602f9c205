"""The retry schedule, expiry and the delay notice; the queue column that remembers the notice."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.org.model import TransportConfig
from courriel.storage.engine import open_engine
from courriel.storage.migrations import create_tables, migrate
from courriel.transport.queue.schema import MIGRATIONS
from courriel.transport.queue.store import (
    QueuedMessage,
    QueuedRecipient,
    QueueStore,
    RecipientResult,
    Reports,
)
from courriel.transport.retry import delay_notice_due, expiry_error, is_expired, next_attempt, retry_delay

DEFAULTS = TransportConfig()


def test_intervals_grow_from_the_transient_interval_then_back_off() -> None:
    minutes = [retry_delay(n, DEFAULTS) / 60 for n in range(1, 12)]
    # Six quick retries from 5 min doubling, capped at MessageRetryInterval (15 min) …
    assert minutes[:6] == [5, 10, 15, 15, 15, 15]
    # … then doubling from 15 min up to an hour.
    assert minutes[6:] == [15, 30, 60, 60, 60]
    assert all(b >= a for a, b in zip(minutes, minutes[1:], strict=False))


def test_intervals_follow_the_configuration() -> None:
    config = TransportConfig(
        transient_failure_retry_interval=1.0, transient_failure_retry_count=2, message_retry_interval=10.0
    )
    assert [retry_delay(n, config) for n in range(1, 7)] == [1.0, 2.0, 10.0, 20.0, 40.0, 40.0]
    assert retry_delay(0, config) == 1.0


def test_no_attempt_is_scheduled_past_expiry() -> None:
    now = 1000.0
    assert next_attempt(1, now, now + 86400, DEFAULTS) == now + 300
    assert next_attempt(1, now, now + 60, DEFAULTS) == now + 60
    assert next_attempt(1, now, now - 5, DEFAULTS) == now  # already expired: due at once
    assert is_expired(now, now) and not is_expired(now + 1, now)


def test_expiry_error_names_the_last_error() -> None:
    text = expiry_error("451 4.4.1 Connection timed out")
    assert text.startswith("550 4.4.7 ") and text.endswith("Last error: 451 4.4.1 Connection timed out")
    assert expiry_error(None).startswith("550 4.4.7 ")


def test_delay_notice_once_after_the_timeout() -> None:
    received = 0.0
    four_hours = DEFAULTS.delay_notification_timeout
    assert not delay_notice_due(received, False, four_hours - 1, DEFAULTS)
    assert delay_notice_due(received, False, four_hours, DEFAULTS)
    assert not delay_notice_due(received, True, four_hours * 2, DEFAULTS)


def _message(mid: str) -> QueuedMessage:
    now = time.time()
    return QueuedMessage(
        id=mid,
        digest="d" * 64,
        size=1,
        sender="s@x.test",
        envelope={},
        received_at=now,
        expires_at=now + 60,
        recipients=[
            QueuedRecipient(
                address="r@y.test",
                original="r@y.test",
                next_hop="smtp:Internet:y.test",
                delivery_type="DnsConnectorDelivery",
            )
        ],
    )


async def test_delay_notice_is_remembered_with_the_result(tmp_path: Path) -> None:
    store = await QueueStore.open(tmp_path / "q.db")
    try:
        msg = _message("M1")
        await store.commit(msg)
        rid = msg.recipients[0].id
        assert rid is not None
        dsn = _message("DSN1")
        dsn.sender = ""
        result = RecipientResult(rid, "retry", "451 4.4.1 timeout", time.time() - 1)
        await store.record_with_reports([result], Reports([dsn], [rid]))
        due = {m.id: r for m, r in await store.due(time.time())}
        assert due["M1"].delay_notified and due["M1"].attempts == 1
        assert not due["DSN1"].delay_notified  # the DSN went in with the result, atomically
    finally:
        await store.close()


async def test_step_two_adds_the_column_to_a_version_one_queue(tmp_path: Path) -> None:
    """A queue made before the delay notice existed is brought forward on open."""
    old = sa.MetaData()
    sa.Table("q_messages", old, sa.Column("id", sa.String(32), primary_key=True))
    sa.Table(
        "q_recipients",
        old,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("message", sa.String(32)),
    )
    engine = open_engine(f"sqlite:///{tmp_path / 'q.db'}")
    try:
        assert await migrate(engine, "queue", [create_tables(old)]) == 1
        assert await migrate(engine, "queue", MIGRATIONS) == 2

        def columns(conn: sa.Connection) -> set[str]:
            return {c["name"] for c in sa.inspect(conn).get_columns("q_recipients")}

        conn: AsyncConnection
        async with engine.connect() as conn:
            assert "delay_notified" in await conn.run_sync(columns)
    finally:
        await engine.dispose()
