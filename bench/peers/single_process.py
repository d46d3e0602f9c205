"""Peers that are one foreground process: baseline (a) aiosmtpd-fsync and the smtp-sink ceiling.

* `AiosmtpdFsync` runs `aiosmtpd_fsync.py` (beside this file) with the harness's own Python,
  storing into `WORKDIR/aiosmtpd-fsync/Maildir`. It stores before it replies, so its
  end-to-end time is its accept time; the Maildir is counted once after the run to prove it.
* `SmtpSink` runs Postfix's `smtp-sink`, which answers every command and stores nothing: the
  ceiling of load generator plus loopback TCP on this machine.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from abc import abstractmethod
from pathlib import Path

from watch import DeliveryCount, MaildirCount

from peers.system import HOST, ServerProcess, System, wait_listening, which


class _OneProcess(System):
    """A `System` whose server is the single process `argv()` starts."""

    def __init__(self, workdir: Path, recipient: str) -> None:
        super().__init__(workdir, recipient)
        self._proc: ServerProcess | None = None

    @abstractmethod
    def argv(self) -> list[str]:
        """The server's command line."""

    async def start(self) -> None:
        self.check_port_free()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._proc = ServerProcess(self.argv(), self.workdir / "server.log")
        self._proc.start()
        await wait_listening(self.port, 30, self._proc)

    async def stop(self) -> None:
        if self._proc is not None:
            await self._proc.stop()

    def pids(self) -> list[int]:
        pid = None if self._proc is None else self._proc.pid
        return [] if pid is None else [pid]


class AiosmtpdFsync(_OneProcess):
    name = "aiosmtpd-fsync"
    port = 2527

    @property
    def maildir(self) -> Path:
        return self.workdir / "Maildir"

    def missing(self) -> str | None:
        if importlib.util.find_spec("aiosmtpd") is None:
            return (
                f"aiosmtpd is not installed (bench-only dependency: {sys.executable} -m pip install aiosmtpd)"
            )
        return None

    def argv(self) -> list[str]:
        script = Path(__file__).resolve().with_name("aiosmtpd_fsync.py")
        return [sys.executable, str(script), "--port", str(self.port), "--maildir", str(self.maildir)]

    async def empty_store(self) -> None:
        for sub in ("tmp", "new", "cur"):
            shutil.rmtree(self.maildir / sub, ignore_errors=True)
            (self.maildir / sub).mkdir(parents=True)

    def deliveries(self) -> DeliveryCount:
        return MaildirCount([self.maildir])

    def versions(self) -> dict[str, str]:
        return {"aiosmtpd": importlib.metadata.version("aiosmtpd"), "python": sys.version.split()[0]}


class SmtpSink(_OneProcess):
    name = "smtp-sink"
    port = 2528
    stores = False

    def missing(self) -> str | None:
        if which("smtp-sink") is None:
            return "smtp-sink is not installed (apt-get install postfix)"
        return None

    def argv(self) -> list[str]:
        sink = which("smtp-sink")
        assert sink is not None
        # smtp-sink refuses to keep root privileges; -m bounds simultaneous sessions above
        # the highest concurrency we run; the last argument is the listen backlog.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        return [sink, *user, "-m", "1000", f"{HOST}:{self.port}", "1024"]

    async def empty_store(self) -> None:
        return None

    def versions(self) -> dict[str, str]:
        postconf = which("postconf")
        if postconf is None:
            return {}
        found = subprocess.run([postconf, "-h", "mail_version"], capture_output=True, text=True)
        return {"postfix": found.stdout.strip()} if found.returncode == 0 else {}
