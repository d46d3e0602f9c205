"""Durable queue operations: commit a received message, claim due recipients, record results.

Every write goes through one group committer, so concurrent SMTP sessions share one flush and
SQLite has a single writer. A message row is removed in the same transaction that records the
final result of its last active recipient.

Delivery status notifications are committed in the same transaction as the results that call
for them (`record_with_reports`, `commit_with_reports`), so a crash can neither lose a bounce
nor send one for a result that was never recorded. Stages that only know `record` (local
delivery) get the same guarantee through `reporter`, which the transport service installs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from courriel.storage.engine import open_engine
from courriel.storage.groupcommit import GroupCommitter
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
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.committer = GroupCommitter(engine, name="queue")
        self.reporter: Reporter | None = None  # set by the transport service

    @classmethod
    async def open(cls, path: Path) -> QueueStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = open_engine(f"sqlite:///{path}")
        await migrate(engine, "queue", MIGRATIONS)
        return cls(engine)

    async def close(self) -> None:
        await self.committer.close()
        await self.engine.dispose()

    async def commit(self, msg: QueuedMessage) -> None:
        """Make a received message durable (group-committed); recipient ids are filled in."""
        await self.commit_with_reports(msg, Reports())

    async def commit_with_reports(self, msg: QueuedMessage, reports: Reports) -> None:
        """Commit a received message and the DSNs its categorization produced, atomically."""

        async def work(conn: AsyncConnection) -> None:
            await _insert(conn, msg)
            for report in reports.messages:
                await _insert(conn, report)

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

        async def work(conn: AsyncConnection) -> list[str]:
            now = time.time()
            touched: set[str] = set()
            for res in results:
                row = (
                    await conn.execute(
                        update(recipients)
                        .where(recipients.c.id == res.id)
                        .values(
                            status=res.status,
                            last_error=res.error,
                            next_attempt=res.next_attempt,
                            attempts=recipients.c.attempts + 1,
                            updated_at=now,
                        )
                        .returning(recipients.c.message)
                    )
                ).first()
                if row is not None:
                    touched.add(row[0])
            if reports.delay_notified:
                await conn.execute(
                    update(recipients).where(recipients.c.id.in_(reports.delay_notified)).values(delay_notified=True)
                )
            for report in reports.messages:
                await _insert(conn, report)
            return await _remove_finished(conn, touched)

        return await self.committer.submit(work)

    async def load(self, ids: Sequence[int]) -> list[tuple[QueuedMessage, QueuedRecipient]]:
        """Recipient rows with their messages, by recipient id (rows already gone are left out)."""
        if not ids:
            return []
        query = select(recipients, messages).join(messages, messages.c.id == recipients.c.message)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.where(recipients.c.id.in_(list(ids))))).mappings().all()
        return _pairs(rows)

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
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return _pairs(rows)

    async def reroute(self, changes: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Change recipients' next hop or schedule (an unreachable recipient that now has a route)."""

        async def work(conn: AsyncConnection) -> None:
            now = time.time()
            for rid, values in changes:
                await conn.execute(update(recipients).where(recipients.c.id == rid).values(updated_at=now, **values))

        await self.committer.submit(work)

    async def set_status(self, where: Any, status: str, *, next_attempt: float | None = None) -> int:
        """Admin changes (suspend, resume, retry now) on recipients matching `where`."""

        async def work(conn: AsyncConnection) -> int:
            values: dict[str, Any] = {"status": status, "updated_at": time.time()}
            if next_attempt is not None:
                values["next_attempt"] = next_attempt
            result = await conn.execute(update(recipients).where(where).values(**values))
            return int(result.rowcount or 0)

        return await self.committer.submit(work)

    async def active_counts(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(recipients.c.status, func.count()).group_by(recipients.c.status)
            )
            return {status: int(count) for status, count in rows}


async def _insert(conn: AsyncConnection, msg: QueuedMessage) -> None:
    """Insert a message and its recipients (ids filled in); a message with none active is not kept."""
    await conn.execute(messages.insert().values(_message_row(msg)))
    now = time.time()
    for rcpt in msg.recipients:
        result = await conn.execute(
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
        rcpt.id = int(result.inserted_primary_key[0])
    if not any(r.status in ACTIVE for r in msg.recipients):
        await conn.execute(delete(messages).where(messages.c.id == msg.id))


def _pairs(rows: Sequence[Any]) -> list[tuple[QueuedMessage, QueuedRecipient]]:
    cache: dict[str, QueuedMessage] = {}
    out = []
    for row in rows:
        msg = cache.get(row["message"])
        if msg is None:
            msg = cache[row["message"]] = _message_from(row)
        out.append((msg, _recipient_from(row)))
    return out


async def _remove_finished(conn: AsyncConnection, ids: Iterable[str]) -> list[str]:
    finished = []
    for mid in ids:
        active = (
            await conn.execute(
                select(func.count())
                .select_from(recipients)
                .where(and_(recipients.c.message == mid, recipients.c.status.in_(ACTIVE)))
            )
        ).scalar_one()
        if active == 0:
            await conn.execute(delete(recipients).where(recipients.c.message == mid))
            await conn.execute(delete(messages).where(messages.c.id == mid))
            finished.append(mid)
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
