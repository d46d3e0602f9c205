"""How the benchmark sees a message arrive in a store (the "end-to-end" clock stops here).

A message is end to end when a mailbox reader could see it. Each system exposes that moment
differently, so each gets a counter with one interface, `count()` = deliveries since
`mark()`:

* `LogTail`: lines a server appends to its own log when a delivery commits -- Courriel's
  message tracking log (`"event_id": "DELIVER"`), Dovecot's `saved mail to INBOX`. Files are
  tailed incrementally (offsets kept between polls), never re-read, so polling every 10 ms
  costs the machine almost nothing while the servers under test compete for its 2 CPUs.
* `MaildirCount`: files present in a Maildir, for a server that stores before it replies
  (aiosmtpd-fsync), which is counted once after the run instead of polled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


class DeliveryCount(Protocol):
    """Counts deliveries into a store since the last `mark()`."""

    # False when the server stores a message before its 250 reply: then end-to-end equals
    # accept and polling during the run would only steal CPU from the server.
    poll_during_run: bool

    def mark(self) -> None: ...

    def count(self) -> int: ...


class LogTail:
    """Counts matching lines appended to the files `glob` names in `directory` since `mark()`.

    New files (log rotation, a first delivery creating the log) are picked up on the next
    poll and read from their start; a file that shrank was rotated in place and is re-read.
    """

    poll_during_run = True

    def __init__(self, directory: Path, glob: str, matches: Callable[[bytes], int]) -> None:
        self._directory = directory
        self._glob = glob
        self._matches = matches
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}
        self._count = 0

    def mark(self) -> None:
        self._offsets = {path: path.stat().st_size for path in self._files()}
        self._partial = {}
        self._count = 0

    def count(self) -> int:
        for path in self._files():
            self._read_new(path)
        return self._count

    def _files(self) -> list[Path]:
        if not self._directory.is_dir():
            return []
        return sorted(self._directory.glob(self._glob))

    def _read_new(self, path: Path) -> None:
        offset = self._offsets.get(path, 0)
        try:
            size = path.stat().st_size
            if size < offset:
                offset = 0
                self._partial.pop(path, None)
            if size == offset:
                return
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read(size - offset)
        except OSError:
            return
        self._offsets[path] = offset + len(data)
        data = self._partial.pop(path, b"") + data
        lines = data.split(b"\n")
        # A writer may be caught mid-line: keep the tail for the next poll.
        if lines[-1]:
            self._partial[path] = lines[-1]
        for line in lines[:-1]:
            self._count += self._matches(line)


def tracking_deliver(line: bytes) -> int:
    """One per DELIVER event of Courriel's message tracking log (one JSON object a line)."""
    if b"DELIVER" not in line:
        return 0
    try:
        event = json.loads(line)
    except ValueError:
        return 0
    return 1 if isinstance(event, dict) and event.get("event_id") == "DELIVER" else 0


def dovecot_saved(line: bytes) -> int:
    """One per message Dovecot's LMTP committed to a mailbox (its info log line)."""
    return 1 if b": saved mail to " in line else 0


class MaildirCount:
    """Files in the `new/` and `cur/` folders of the given Maildirs (the store is emptied
    before each run, so `mark()` has nothing to remember)."""

    poll_during_run = False

    def __init__(self, maildirs: list[Path]) -> None:
        self._maildirs = maildirs

    def mark(self) -> None:
        return None

    def count(self) -> int:
        total = 0
        for maildir in self._maildirs:
            for sub in ("new", "cur"):
                try:
                    total += sum(1 for e in os.scandir(maildir / sub) if not e.name.startswith("."))
                except FileNotFoundError:
                    continue
        return total
