"""What the worker processes of one server must agree on: one small SQLite file in its data_dir.

`courriel serve` forks `server.workers` processes that share the listening sockets, so a limit
kept in one process's memory multiplies by the number of workers: an attacker gets N times the
password guesses, a user N times the connections. The login throttle (throttle.py) and the
connection slots (slots.py) keep their counts here instead.

Why SQLite (WAL, short `BEGIN IMMEDIATE` transactions) rather than an mmap'ed table with fcntl
locks: one check-and-take transaction costs about 17 µs against 2 µs for a locked mmap update, and
a connection's admit + leave about 50 µs (150 µs with two processes at it at once), all small
beside a TLS handshake or an argon2 check; and SQLite gives what a hand-made table would have to
earn: a process killed in the middle of a write leaves nothing half-written (its lock dies with
it), keys of any length, no fixed-size table to overflow. The calls are synchronous (the callers'
interfaces are), which at these costs is cheaper than a hop to a thread.

What a dead process held must not leak: every slot row names its owner by pid *and* the
process's start time (so a recycled pid is not mistaken for it), and rows of owners that are
gone are reaped when a process opens the file and whenever a limit would refuse.

The state is only meaningful within one boot (monotonic clock, pids), so the file is named by
the kernel's boot id and files of earlier boots are removed. That also means a power loss can
never leave a torn file behind for us to read, which is why commits need no fsync.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
DIRECTORY = "worker-limits"  # under the server's data_dir
BUSY_TIMEOUT = 5.0  # seconds; transactions last microseconds, so waiting this long means trouble

Owner = tuple[int, int]  # (pid, start time in clock ticks since boot; 0 where unknown)

SCHEMA = """
CREATE TABLE IF NOT EXISTS login_failures (
    id INTEGER PRIMARY KEY,  -- in insertion order: the oldest rows have the smallest ids
    kind TEXT NOT NULL,      -- 'ip' or 'user'
    key TEXT NOT NULL,
    user TEXT NOT NULL,      -- the username that failed (see LoginThrottle.record_success)
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (kind, key, at);
CREATE INDEX IF NOT EXISTS login_failures_at ON login_failures (at);
CREATE TABLE IF NOT EXISTS slots (
    scope TEXT NOT NULL,     -- the service: 'imap-proxy', 'pop3-backend' …
    kind TEXT NOT NULL,      -- 'all', 'ip' or 'user'
    key TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (scope, kind, key, pid, started)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS slots_owner ON slots (pid, started);
"""


class SharedState:
    """The shared file of one server; safe to open in every worker, and across a fork."""

    def __init__(self, directory: Path, *, boot_id: str | None = None) -> None:
        self.directory = directory
        boot = boot_id if boot_id is not None else _boot_id()
        self.path = directory / (f"{boot}.sqlite3" if boot else "shared.sqlite3")
        self._boot = boot
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._owner: Owner = (0, 0)
        self._lock = threading.RLock()  # `owner` and `read` may be called inside `write`

    @classmethod
    def of_server(cls, data_dir: Path) -> SharedState:
        return cls(data_dir / DIRECTORY)

    def open(self) -> None:
        """Open (or create) the file now, so that a server that cannot fails at start rather
        than at its first connection; otherwise the first use opens it."""
        with self._lock:
            self._connection()

    @property
    def owner(self) -> Owner:
        """This process, as slot rows name it."""
        with self._lock:
            self._connection()
            return self._owner

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, taken at once (BEGIN IMMEDIATE: no read-then-upgrade
        deadlock between workers), committed on exit, rolled back on an exception."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    def reap(self, conn: sqlite3.Connection) -> int:
        """Inside a write transaction: drop the slots of processes that are gone; how many owners."""
        owners = conn.execute("SELECT DISTINCT pid, started FROM slots").fetchall()
        dead = [(pid, started) for pid, started in owners if not alive(pid, started)]
        for pid, started in dead:
            conn.execute("DELETE FROM slots WHERE pid = ? AND started = ?", (pid, started))
            log.info("released the connection slots of process %d, which is gone", pid)
        return len(dead)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        pid = os.getpid()
        if self._conn is not None and self._pid == pid:
            return self._conn
        # A connection must not cross a fork: the child opens its own (the parent's stays theirs).
        self._conn = self._open()
        self._pid = pid
        self._owner = (pid, process_start(pid) or 0)
        return self._conn

    def _open(self) -> sqlite3.Connection:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._boot:
            for old in self.directory.glob("*.sqlite3*"):
                if not old.name.startswith(self._boot):
                    old.unlink(missing_ok=True)  # an earlier boot: none of its processes can be alive
        # Readable by the server only: it holds addresses and user names of failed logins
        # (SQLite gives its -wal and -shm files the same mode).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # see the module docstring: a new boot, a new file
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA.split(";"):  # not executescript: it would COMMIT first
                if statement.strip():
                    conn.execute(statement)
            self.reap(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise
        conn.execute("COMMIT")
        return conn


def process_start(pid: int) -> int | None:
    """The start time of a live process (clock ticks since boot), 0 where the system does not
    say, None when there is no such process (a zombie counts as gone: it holds nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc: whether the pid exists is all we can tell
        return _exists(pid)
    # The command name is in parentheses and may hold spaces or parentheses: split after the last.
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])  # field 22 of proc(5), the third after the name being fields[0]


def alive(pid: int, started: int) -> bool:
    now = process_start(pid)
    return now is not None and (started == 0 or now == 0 or now == started)


def _exists(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # someone else's process: it exists
        pass
    return 0


def _boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""
