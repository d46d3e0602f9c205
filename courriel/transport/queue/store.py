"""Durable queue operations: commit a received message, claim due recipients, record results.

Every write goes through one group committer, so concurrent SMTP sessions share one flush and
SQLite has a single writer; the queue is always a local SQLite file, so its writer is a thread that
runs a whole batch per hop (storage/groupcommit.py, ThreadedGroupCommitter). A message row is removed in the same transaction that records the
final result of its last active recipient.

Delivery status notifications are committed in the same transaction as the results that call
for them (`record_with_reports`, `commit_with_reports`), so a crash can neither lose a bounce
nor send one for a result that was never recorded. Stages that only know `record` (local
delivery) get the same guarantee through `reporter`, which the transport service installs.

Garbage collection (transport/queue/gc.py) reads `digests` (the blobs this file references) and
removes, in batches, any finished message a removal above did not take (`finished`, `forget`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, delete, exists, func, not_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from courriel.storage.engine import open_engine, open_reader, open_sync_sqlite, sqlite_url
from courriel.storage.groupcommit import ThreadedGroupCommitter
from courriel.storage.migrations import migrate
from courriel.transport.queue.schema import ACTIVE, MIGRATIONS, messages, recipients


@dataclass(slots=True)
class QueuedRecipient:
    address: str
    original: str
    next_hop: str
    delivery_type: str
    target: str | None = None
    orcpt: str | None = None
    notify: str | None = None
    status: str = "ready"
    last_error: str | None = None
    next_attempt: float = 0.0
    id: int | None = None
    attempts: int = 0
    delay_notified: bool = False


@dataclass(slots=True)
class QueuedMessage:
    id: str
    digest: str
    size: int
    sender: str
    envelope: dict[str, Any]
    received_at: float
    expires_at: float
    source: str = "SMTP"
    connector: str | None = None
    client_ip: str | None = None
    client_helo: str | None = None
    auth_user: str | None = None
    message_id: str | None = None
    subject: str | None = None
    recipients: list[QueuedRecipient] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What a delivery attempt did to one recipient row."""

    id: int
    status: str  # delivered, relayed, failed, retry
    error: str | None = None
    next_attempt: float = 0.0


@dataclass(slots=True)
class Reports:
    """What a batch of results adds to the queue in its own transaction: DSN messages to commit,
    and the recipients whose one delay notice they carry."""

    messages: list[QueuedMessage] = field(default_factory=list)
    delay_notified: list[int] = field(default_factory=list)


class Reporter(Protocol):
    """Turns recorded results into reports (`courriel.transport.reports.Reporter`)."""

    async def prepare(self, results: Sequence[RecipientResult]) -> Reports: ...

    def committed(self, reports: Reports) -> None: ...


def _message_row(msg: QueuedMessage) -> dict[str, Any]:
    return {
        "id": msg.id,
        "digest": msg.digest,
        "size": msg.size,
        "sender": msg.sender,
        "envelope": msg.envelope,
        "received_at": msg.received_at,
        "expires_at": msg.expires_at,
        "source": msg.source,
        "connector": msg.connector,
        "client_ip": msg.client_ip,
        "client_helo": msg.client_helo,
        "auth_user": msg.auth_user,
        "message_id": msg.message_id,
        "subject": msg.subject,
    }


class QueueStore:
    def __init__(self, writer: Engine, reader: AsyncEngine) -> None:
        self.reader = reader  # reads never queue behind the writer
        self.committer = ThreadedGroupCommitter(writer, name="queue")
        self.reporter: Reporter | None = None  # set by the transport service

    @classmethod
    async def open(cls, path: Path) -> QueueStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        url = sqlite_url(path)
        engine = open_engine(url)
        try:
            await migrate(engine, "queue", MIGRATIONS)
            reader = open_reader(engine, url)
        finally:
            await engine.dispose()  # from here on, writes go through the writer thread's own engine
        return cls(open_sync_sqlite(path), reader)

    async def close(self) -> None:
        await self.committer.close()
        self.committer.engine.dispose()
        await self.reader.dispose()

    async def commit(self, msg: QueuedMessage) -> None:
        """Make a received message durable (group-committed); recipient ids are filled in."""
        await self.commit_with_reports(msg, Reports())

    async def commit_with_reports(self, msg: QueuedMessage, reports: Reports) -> None:
        """Commit a received message and the DSNs its categorization produced, atomically."""

        def work(conn: Connection) -> None:
            _insert(conn, msg)
            for report in reports.messages:
                _insert(conn, report)

        await self.committer.submit(work)

    async def record(self, results: Sequence[RecipientResult]) -> list[str]:
        """Record attempt results; returns the ids of messages now finished (and removed)."""
        if self.reporter is None:
            return await self.record_with_reports(results, Reports())
        reports = await self.reporter.prepare(results)
        finished = await self.record_with_reports(results, reports)
        self.reporter.committed(reports)
        return finished

    async def record_with_reports(self, results: Sequence[RecipientResult], reports: Reports) -> list[str]:
        """Record results, commit the DSNs they call for and mark delay notices, in one transaction."""

        def work(conn: Connection) -> list[str]:
            touched: set[str] = set()
            if results:
                # One executemany and one select, whatever the batch size: each statement is a
                # round trip to the database thread, and a group commit holds many results.
                conn.execute(
                    update(recipients)
                    .where(recipients.c.id == bindparam("rid"))
                    .values(
                        status=bindparam("new_status"),
                        last_error=bindparam("error"),
                        next_attempt=bindparam("when"),
                        attempts=recipients.c.attempts + 1,
                        updated_at=time.time(),
                    ),
                    [{"rid": r.id, "new_status": r.status, "error": r.error, "when": r.next_attempt} for r in results],
                )
                ids = [r.id for r in results]
                touched.update((conn.execute(select(recipients.c.message).where(recipients.c.id.in_(ids)))).scalars())
            if reports.delay_notified:
                conn.execute(
                    update(recipients).where(recipients.c.id.in_(reports.delay_notified)).values(delay_notified=True)
                )
            for report in reports.messages:
                _insert(conn, report)
            return _remove_finished(conn, touched)

        return await self.committer.submit(work)

    async def load(self, ids: Sequence[int]) -> list[tuple[QueuedMessage, QueuedRecipient]]:
        """Recipient rows with their messages, by recipient id (rows already gone are left out)."""
        if not ids:
            return []
        query = select(recipients, messages).join(messages, messages.c.id == recipients.c.message)
        async with self.reader.connect() as conn:
            rows = (await conn.execute(query.where(recipients.c.id.in_(list(ids))))).mappings().all()
        return recipient_pairs(rows)

    async def due(self, now: float, *, limit: int = 1000) -> list[tuple[QueuedMessage, QueuedRecipient]]:
        """Recipients whose next attempt is due, ready ones included (their in-memory hand-off may have been lost)."""
        statuses = ["retry", "ready"]
        query = (
            select(recipients, messages)
            .join(messages, messages.c.id == recipients.c.message)
            .where(and_(recipients.c.status.in_(statuses), recipients.c.next_attempt <= now))
            .order_by(recipients.c.next_attempt, recipients.c.id)
            .limit(limit)
        )
        async with self.reader.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return recipient_pairs(rows)

    async def reroute(self, changes: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Change recipients' next hop or schedule (an unreachable recipient that now has a route)."""

        def work(conn: Connection) -> None:
            now = time.time()
            for rid, values in changes:
                conn.execute(update(recipients).where(recipients.c.id == rid).values(updated_at=now, **values))

        await self.committer.submit(work)

    async def set_status(self, where: Any, status: str, *, next_attempt: float | None = None) -> int:
        """Admin changes (suspend, resume, retry now) on recipients matching `where`."""

        def work(conn: Connection) -> int:
            values: dict[str, Any] = {"status": status, "updated_at": time.time()}
            if next_attempt is not None:
                values["next_attempt"] = next_attempt
            result = conn.execute(update(recipients).where(where).values(**values))
            return int(result.rowcount or 0)

        return await self.committer.submit(work)

    async def wake(self, next_hop: str) -> int:
        """Recipients waiting to retry `next_hop` become due now (it has just become reachable)."""
        waiting = and_(recipients.c.next_hop == next_hop, recipients.c.status == "retry")
        return await self.set_status(waiting, "retry", next_attempt=0.0)

    async def digests(self) -> set[str]:
        """Every blob this queue file references (for blob garbage collection)."""
        async with self.reader.connect() as conn:
            return set((await conn.execute(select(messages.c.digest).distinct())).scalars())

    async def finished(self, before: float, *, limit: int = 500) -> list[str]:
        """Ids of messages with no active recipient and none updated since `before` (at most `limit`)."""
        async with self.reader.connect() as conn:
            return list((await conn.execute(_finished(before).limit(limit))).scalars())

    async def forget(self, ids: Sequence[str], before: float) -> int:
        """Remove these messages with their recipient rows, if they are still finished; returns how many."""

        def work(conn: Connection) -> int:
            gone = list(conn.execute(_finished(before).where(messages.c.id.in_(list(ids)))).scalars())
            if gone:
                conn.execute(delete(recipients).where(recipients.c.message.in_(gone)))
                conn.execute(delete(messages).where(messages.c.id.in_(gone)))
            return len(gone)

        return await self.committer.submit(work) if ids else 0

    async def active_counts(self) -> dict[str, int]:
        async with self.reader.connect() as conn:
            rows = await conn.execute(
                select(recipients.c.status, func.count()).group_by(recipients.c.status)
            )
            return {status: int(count) for status, count in rows}


def _insert(conn: Connection, msg: QueuedMessage) -> None:
    """Insert a message and its recipients (ids filled in); a message with none active is not kept."""
    conn.execute(messages.insert().values(_message_row(msg)))
    now = time.time()
    for rcpt in msg.recipients:
        result = conn.execute(
            recipients.insert().values(
                message=msg.id,
                address=rcpt.address,
                original=rcpt.original,
                orcpt=rcpt.orcpt,
                notify=rcpt.notify,
                next_hop=rcpt.next_hop,
                delivery_type=rcpt.delivery_type,
                target=rcpt.target,
                status=rcpt.status,
                attempts=0,
                next_attempt=rcpt.next_attempt,
                last_error=rcpt.last_error,
                updated_at=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        rcpt.id = int(key[0])
    if not any(r.status in ACTIVE for r in msg.recipients):
        conn.execute(delete(messages).where(messages.c.id == msg.id))


def _finished(before: float) -> Any:
    """Messages whose every recipient is done (delivered, relayed, failed) and was last changed before `before`."""
    active_or_recent = and_(
        recipients.c.message == messages.c.id,
        (recipients.c.status.in_(ACTIVE)) | (recipients.c.updated_at >= before),
    )
    return (
        select(messages.c.id)
        .where(messages.c.received_at < before, not_(exists().where(active_or_recent)))
        .order_by(messages.c.id)
    )


def recipient_pairs(rows: Sequence[Any]) -> list[tuple[QueuedMessage, QueuedRecipient]]:
    """(message, recipient) for rows of recipients joined with their messages; the recipients of
    one message share one `QueuedMessage`."""
    cache: dict[str, QueuedMessage] = {}
    out = []
    for row in rows:
        msg = cache.get(row["message"])
        if msg is None:
            msg = cache[row["message"]] = _message_from(row)
        out.append((msg, _recipient_from(row)))
    return out


def _remove_finished(conn: Connection, ids: Iterable[str]) -> list[str]:
    candidates = list(ids)
    if not candidates:
        return []
    still_active = set(
        (
            conn.execute(
                select(recipients.c.message)
                .where(and_(recipients.c.message.in_(candidates), recipients.c.status.in_(ACTIVE)))
                .distinct()
            )
        ).scalars()
    )
    finished = [mid for mid in candidates if mid not in still_active]
    if finished:
        conn.execute(delete(recipients).where(recipients.c.message.in_(finished)))
        conn.execute(delete(messages).where(messages.c.id.in_(finished)))
    return finished


def _message_from(row: Any) -> QueuedMessage:
    return QueuedMessage(
        id=row["message"],
        digest=row["digest"],
        size=row["size"],
        sender=row["sender"],
        envelope=row["envelope"],
        received_at=row["received_at"],
        expires_at=row["expires_at"],
        source=row["source"],
        connector=row["connector"],
        client_ip=row["client_ip"],
        client_helo=row["client_helo"],
        auth_user=row["auth_user"],
        message_id=row["message_id"],
        subject=row["subject"],
    )


def _recipient_from(row: Any) -> QueuedRecipient:
    return QueuedRecipient(
        id=row["id"],
        address=row["address"],
        original=row["original"],
        next_hop=row["next_hop"],
        delivery_type=row["delivery_type"],
        target=row["target"],
        orcpt=row["orcpt"],
        notify=row["notify"],
        status=row["status"],
        last_error=row["last_error"],
        next_attempt=row["next_attempt"],
        attempts=row["attempts"],
        delay_notified=bool(row["delay_notified"]),
    )
