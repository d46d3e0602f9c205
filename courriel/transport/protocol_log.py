"""SMTP protocol logs: every line in and out of a session, for connectors logging at Verbose.

One CSV file per day for all receive connectors, as Exchange's RECV<yyyymmdd>.LOG, with the
connector in a column: date-time,connector-id,session-id,event,data ("<" received, ">" sent,
"*" information). Credentials never reach it: the engine logs AUTH exchanges as "<authentication>".
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO


class ProtocolLog:
    def __init__(self, directory: Path, enabled: Callable[[str], bool], prefix: str = "RECV") -> None:
        self.directory = directory
        self.enabled = enabled
        self.prefix = prefix
        self._day = ""
        self._file: IO[str] | None = None

    def _open(self) -> IO[str]:
        day = time.strftime("%Y%m%d", time.gmtime())
        if self._file is None or day != self._day:
            if self._file is not None:
                self._file.close()
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{self.prefix}{day}.log"
            new = not path.exists()
            self._file = path.open("a", encoding="utf-8", newline="", buffering=1)
            if new:
                self._file.write("date-time,connector-id,session-id,event,data\n")
            self._day = day
        return self._file

    def write(self, connector: str, session_id: str, event: str, data: str) -> None:
        if not connector or not self.enabled(connector):
            return
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(
            [datetime.now(UTC).isoformat(timespec="milliseconds"), connector, session_id, event, data]
        )
        self._open().write(buf.getvalue())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
