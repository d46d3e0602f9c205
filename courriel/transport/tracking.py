"""The message tracking log (Get-MessageTrackingLog): one JSON line per event, one file per day.

Events: RECEIVE, EXPAND, DELIVER, FAIL, DEFER, SEND, DSN, DROP (research §8). Fields follow
Exchange's names; `internal_message_id` is this server's queue id, `message_id` the header's.
Files are appended without fsync: the log is evidence, not state (the queue is the state).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVENTS = ("RECEIVE", "EXPAND", "RESOLVE", "DELIVER", "FAIL", "DEFER", "SEND", "DSN", "DROP", "REDIRECT")


@dataclass(slots=True)
class TrackingLog:
    directory: Path
    server: str

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def _file(self, when: float) -> Path:
        return self.directory / f"MSGTRK{time.strftime('%Y%m%d', time.gmtime(when))}.log"

    def write(
        self,
        event_id: str,
        *,
        source: str,
        internal_message_id: str,
        message_id: str | None,
        sender: str,
        recipients: Iterable[str],
        connector: str | None = None,
        client_ip: str | None = None,
        server_ip: str | None = None,
        recipient_status: str | None = None,
        subject: str | None = None,
        size: int | None = None,
        detail: str | None = None,
        related: str | None = None,
    ) -> None:
        assert event_id in EVENTS, event_id
        now = time.time()
        record: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "event_id": event_id,
            "source": source,
            "server": self.server,
            "internal_message_id": internal_message_id,
            "message_id": message_id,
            "sender": sender,
            "recipients": list(recipients),
            "connector": connector,
            "client_ip": client_ip,
            "server_ip": server_ip,
            "recipient_status": recipient_status,
            "subject": subject,
            "size": size,
            "detail": detail,
            "related": related,
        }
        line = json.dumps({k: v for k, v in record.items() if v is not None}, ensure_ascii=False) + "\n"
        # One write() of a whole line in append mode: lines from several processes never interleave.
        fd = os.open(self._file(now), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _records(log_dir: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(log_dir.glob("MSGTRK*.log")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash


def _matches(value: str | None, wanted: str | None) -> bool:
    return wanted is None or (value is not None and value.lower() == wanted.lower())


def search_tracking(
    log_dir: Path,
    *,
    sender: str | None = None,
    recipient: str | None = None,
    message_id: str | None = None,
    event_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Events matching every given criterion, oldest first (Get-MessageTrackingLog's filters)."""
    if not log_dir.exists():
        return []
    wanted_mid = message_id.strip("<>").lower() if message_id else None
    out: list[dict[str, Any]] = []
    for rec in _records(log_dir):
        if not _matches(rec.get("sender"), sender) or not _matches(rec.get("event_id"), event_id):
            continue
        if recipient and recipient.lower() not in (r.lower() for r in rec.get("recipients", [])):
            continue
        if wanted_mid and (rec.get("message_id") or "").strip("<>").lower() != wanted_mid:
            continue
        if start or end:
            when = datetime.fromisoformat(rec["timestamp"])
            if (start and when < _aware(start)) or (end and when > _aware(end)):
                continue
        out.append(rec)
        if len(out) >= limit:
            break
    return out


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)
