"""Queue management by the administrator: Retry-Queue, Suspend-Message, Resume-Message, Remove-Message, and
`queue show` (Get-Message -IncludeRecipientInfo with the headers).

Runs in the `courriel` command, beside a running server: every operation opens each queue file
of the server (one per worker process, `inspect.queue_paths`), changes rows through that
file's own group committer (SQLite keeps one writer at a time; WAL readers in the server never
block), writes an ADMIN tracking event, and touches the file's change mark so the worker that
owns it scans its queue within a second (`service.changed_mark`) instead of at its next
15-second scan.

Remove-Message fails the message's active recipients with `550 5.3.2 Message deleted by
administrator`: Exchange's QUEUE.Admin text uses X.3.2, but with class 4 (`550 4.3.2`); the
class must agree with the reply and with what happened, a final failure (RFC 3463 §3.1), so
it is 5 here. With `with_ndr` the sender's NDR is built by the transport's own `Reporter`
(transport/reports.py, the path the queue scan takes when a message expires) and committed in
the same transaction as the failures; the running server delivers it from the queue.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select

from courriel.config.schema import ServerConfig
from courriel.core.errors import NotFound
from courriel.org.directory import Directory
from courriel.org.snapshot import DirectorySnapshot
from courriel.storage.blobs import BlobStore
from courriel.transport.categorize.resolver import Categorizer, EnvelopeRecipient
from courriel.transport.queue.inspect import iso_time, queue_name, queue_paths
from courriel.transport.queue.schema import ACTIVE, messages, recipients
from courriel.transport.queue.store import (
    QueuedMessage,
    QueuedRecipient,
    QueueStore,
    RecipientResult,
    Reports,
    recipient_pairs,
)
from courriel.transport.reports import Outcome, Reporter
from courriel.transport.service import changed_mark, queued_recipients
from courriel.transport.tracking import TrackingLog

REMOVED = "550 5.3.2 Message deleted by administrator"
HEADER_LIMIT = 64 * 1024  # `queue show` reads this much of the message for its header block


def _tracking(config: ServerConfig) -> TrackingLog:
    return TrackingLog(config.data_dir / "logs" / "tracking", config.name)


@asynccontextmanager
async def _open(path: Path) -> AsyncIterator[QueueStore]:
    store = await QueueStore.open(path)
    try:
        yield store
    finally:
        await store.close()


def _signal(path: Path) -> None:
    """Tell the worker that owns this queue file to scan now: a new file (new inode) each time."""
    mark = changed_mark(path)
    tmp = mark.with_name(f"{mark.name}.{os.getpid()}")
    tmp.write_text(str(time.time_ns()))
    os.replace(tmp, mark)


async def _active(
    store: QueueStore, message_id: str | None = None
) -> list[tuple[QueuedMessage, QueuedRecipient]]:
    """Active recipient rows with their messages (of one message when given)."""
    query = (
        select(recipients, messages)
        .join(messages, messages.c.id == recipients.c.message)
        .where(recipients.c.status.in_(ACTIVE))
        .order_by(recipients.c.message, recipients.c.id)
    )
    if message_id is not None:
        query = query.where(messages.c.id == message_id)
    async with store.reader.connect() as conn:
        return recipient_pairs((await conn.execute(query)).mappings().all())


def _in_queue(rcpt: QueuedRecipient, queue: str | None) -> bool:
    """`server\\Name` or `Name` (Unreachable, example.com, DB01), case-insensitively."""
    return queue is None or queue.split("\\")[-1].lower() == queue_name(rcpt.next_hop).lower()


def _change(
    config: ServerConfig, msg: QueuedMessage, rcpts: list[QueuedRecipient], status: str
) -> dict[str, Any]:
    return {
        "identity": f"{config.name}\\{msg.id}",
        "from": msg.sender or "<>",
        "subject": msg.subject,
        "queues": sorted({queue_name(r.next_hop) for r in rcpts}),
        "recipients": [r.address for r in rcpts],
        "status": status,
    }


def _track(
    config: ServerConfig,
    event: str,
    msg: QueuedMessage,
    rcpts: list[QueuedRecipient],
    detail: str,
    status: str | None = None,
) -> None:
    _tracking(config).write(
        event,
        source="ADMIN",
        internal_message_id=msg.id,
        message_id=msg.message_id,
        sender=msg.sender,
        recipients=[r.address for r in rcpts],
        recipient_status=status,
        subject=msg.subject,
        size=msg.size,
        detail=detail,
    )


async def retry(config: ServerConfig, queue: str | None, all: bool = False) -> list[dict[str, Any]]:
    """Retry-Queue: recipients waiting for a retry in `queue` (every queue with `all`) are due now.

    Unreachable recipients are routed again by the scan this starts (a send connector may be new)."""
    if queue is None and not all:
        raise NotFound("no queue given", "name a queue (server\\Name or Name) or give --all")
    out: list[dict[str, Any]] = []
    for path in queue_paths(config):
        async with _open(path) as store:
            rows = [
                (m, r)
                for m, r in await _active(store)
                if r.status == "retry" and (all or _in_queue(r, queue))
            ]
            if not rows:
                continue
            ids = [r.id for _, r in rows if r.id is not None]
            await store.set_status(recipients.c.id.in_(ids), "retry", next_attempt=time.time())
        _signal(path)
        for msg, rcpts in _by_message(rows):
            _track(config, "DEFER", msg, rcpts, "retry now (Retry-Queue)", rcpts[0].last_error)
            out.append(_change(config, msg, rcpts, "retry"))
    if not out and not all and not any(_in_queue(r, queue) for r in await _all_active(config)):
        raise NotFound(f"queue {queue} not found", f"no queue {queue} on {config.name}")
    return out


def _by_message(
    rows: list[tuple[QueuedMessage, QueuedRecipient]],
) -> list[tuple[QueuedMessage, list[QueuedRecipient]]]:
    grouped: dict[str, tuple[QueuedMessage, list[QueuedRecipient]]] = {}
    for msg, rcpt in rows:
        grouped.setdefault(msg.id, (msg, []))[1].append(rcpt)
    return list(grouped.values())


async def _all_active(config: ServerConfig) -> list[QueuedRecipient]:
    found: list[QueuedRecipient] = []
    for path in queue_paths(config):
        async with _open(path) as store:
            found += [r for _, r in await _active(store)]
    return found


def _message_id(identity: str) -> str:
    """A message is named by its queue id, alone or as Get-Message's `server\\queue\\id`."""
    return identity.split("\\")[-1]


async def _change_message(
    config: ServerConfig,
    identity: str,
    wanted: Callable[[QueuedRecipient], bool],
    act: Callable[[Path, QueueStore, QueuedMessage, list[QueuedRecipient]], Any],
) -> list[dict[str, Any]]:
    """Run `act` on the message's active recipients that are `wanted`, in each queue file it is in."""
    message_id = _message_id(identity)
    out: list[dict[str, Any]] = []
    seen = False
    for path in queue_paths(config):
        async with _open(path) as store:
            rows = await _active(store, message_id)
            seen = seen or bool(rows)
            chosen = [r for _, r in rows if wanted(r)]
            if chosen:
                out.append(await act(path, store, rows[0][0], chosen))
    if not seen:
        raise NotFound(
            f"message {message_id} not found", f"no message {message_id} in the queues of {config.name}"
        )
    return out


async def suspend(config: ServerConfig, message_id: str, queue: str | None = None) -> list[dict[str, Any]]:
    """Suspend-Message: the message's ready and retry recipients wait until resumed (tracked as DEFER).

    A recipient a delivery stage is working on right now keeps the result of that attempt."""

    async def act(
        path: Path, store: QueueStore, msg: QueuedMessage, rcpts: list[QueuedRecipient]
    ) -> dict[str, Any]:
        await store.set_status(recipients.c.id.in_([r.id for r in rcpts]), "suspended")
        _track(config, "DEFER", msg, rcpts, "suspended by administrator (Suspend-Message)")
        return _change(config, msg, rcpts, "suspended")

    return await _change_message(
        config, message_id, lambda r: r.status != "suspended" and _in_queue(r, queue), act
    )


async def resume(config: ServerConfig, message_id: str, queue: str | None = None) -> list[dict[str, Any]]:
    """Resume-Message: suspended recipients are ready again and attempted at once."""

    async def act(
        path: Path, store: QueueStore, msg: QueuedMessage, rcpts: list[QueuedRecipient]
    ) -> dict[str, Any]:
        ids = [r.id for r in rcpts]
        await store.set_status(
            and_(recipients.c.id.in_(ids), recipients.c.status == "suspended"),
            "ready",
            next_attempt=time.time(),
        )
        _signal(path)
        _track(config, "DEFER", msg, rcpts, "resumed by administrator (Resume-Message)")
        return _change(config, msg, rcpts, "ready")

    return await _change_message(
        config, message_id, lambda r: r.status == "suspended" and _in_queue(r, queue), act
    )


async def remove(config: ServerConfig, message_id: str, with_ndr: bool = False) -> list[dict[str, Any]]:
    """Remove-Message: every active recipient fails with REMOVED; an NDR to the sender with `with_ndr`
    (tracked FAIL + DSN), else silently (tracked DROP). The message leaves the queue."""
    reporter_for = _reporter_factory(config) if with_ndr else None

    async def act(
        path: Path, store: QueueStore, msg: QueuedMessage, rcpts: list[QueuedRecipient]
    ) -> dict[str, Any]:
        results = [RecipientResult(r.id, "failed", REMOVED) for r in rcpts if r.id is not None]
        if reporter_for is None:
            await store.record_with_reports(results, Reports())
            _track(config, "DROP", msg, rcpts, "removed by administrator (Remove-Message)", REMOVED)
        else:
            reporter = await reporter_for(store)
            # One transaction for the failures and the NDR; the DSN event is written by `committed`.
            await reporter.record([Outcome(msg, r, res) for r, res in zip(rcpts, results, strict=True)])
            _track(
                config,
                "FAIL",
                msg,
                rcpts,
                "removed by administrator with NDR (Remove-Message -WithNDR)",
                REMOVED,
            )
            _signal(path)  # the NDR waits in this file as a ready message
        return _change(config, msg, rcpts, "failed")

    return await _change_message(config, message_id, lambda r: True, act)


def _reporter_factory(config: ServerConfig) -> Callable[[QueueStore], Any]:
    """The transport's Reporter for a queue file, on a directory snapshot read once per command."""
    snapshot: list[DirectorySnapshot] = []

    async def build(store: QueueStore) -> Reporter:
        if not snapshot:
            directory = await Directory.open(config.directory_url, config.data_dir)
            try:
                snapshot.append(await directory.snapshot())
            finally:
                await directory.close()
        view = snapshot[0]
        settings = view.transport_config

        def categorize(rcpts: list[EnvelopeRecipient]) -> list[QueuedRecipient]:
            result = Categorizer(view, config.name, config.fqdn, view).categorize(rcpts)
            return queued_recipients(result, time.time(), settings.message_retry_interval)

        return Reporter(
            fqdn=config.fqdn,
            queue=store,
            blobs=BlobStore(config.data_dir / "blobs"),
            tracking=_tracking(config),
            directory=lambda: view,
            transport_config=lambda: settings,
            categorize=categorize,
            dispatch=lambda _msg, _rcpts: None,  # the server's scan delivers it (signalled above)
        )

    return build


async def show(config: ServerConfig, message_id: str) -> dict[str, Any]:
    """Get-Message with its recipients: envelope, per-recipient state, the header block."""
    wanted = _message_id(message_id)
    for path in queue_paths(config):
        async with _open(path) as store:
            query = (
                select(recipients, messages)
                .join(messages, messages.c.id == recipients.c.message)
                .where(messages.c.id == wanted)
                .order_by(recipients.c.id)
            )
            async with store.reader.connect() as conn:
                pairs = recipient_pairs((await conn.execute(query)).mappings().all())
        if pairs:
            return _shown(config, pairs)
    raise NotFound(f"message {wanted} not found", f"no message {wanted} in the queues of {config.name}")


def _shown(config: ServerConfig, pairs: list[tuple[QueuedMessage, QueuedRecipient]]) -> dict[str, Any]:
    msg = pairs[0][0]
    return {
        "identity": f"{config.name}\\{msg.id}",
        "from": msg.sender or "<>",
        "message_id": msg.message_id,
        "subject": msg.subject,
        "size": msg.size,
        "source": msg.source,
        "connector": msg.connector,
        "client_ip": msg.client_ip,
        "auth_user": msg.auth_user,
        "received": iso_time(msg.received_at),
        "expires": iso_time(msg.expires_at),
        "envelope": msg.envelope,
        "recipients": [
            {
                "address": r.address,
                "original": r.original,
                "status": r.status,
                "queue": queue_name(r.next_hop),
                "next_hop": r.next_hop,
                "attempts": r.attempts,
                "last_error": r.last_error,
                "next_attempt": iso_time(r.next_attempt) if r.status in ACTIVE else None,
            }
            for _, r in pairs
        ],
        "headers": _headers(BlobStore(config.data_dir / "blobs").path(msg.digest)),
    }


def _headers(blob: Path) -> str:
    """The header block (RFC 5322 §2.1: up to the first empty line), from the blob's first 64 KiB."""
    try:
        with blob.open("rb") as fh:
            head = fh.read(HEADER_LIMIT)
    except FileNotFoundError:
        return ""
    end = head.find(b"\r\n\r\n")
    return head[: end + 2 if end >= 0 else len(head)].decode("utf-8", "replace")
