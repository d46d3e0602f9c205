"""A system under test, as the harness drives it: set up, start, empty, measure, stop.

Each peer (aiosmtpd-fsync, postfix-dovecot, smtp-sink) and Courriel itself implement
`System`. The harness only knows this interface, so adding a server to the comparison is one
subclass. Every server listens on 127.0.0.1 only; every process a `System` starts is stopped
by `stop()`, which is safe to call twice and after a failed `start()`.

`ServerProcess` is the one way a system runs a foreground server: own session (so the
terminal's Ctrl-C reaches the harness, which then stops servers in order), output to a log
file, SIGTERM then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path

from watch import DeliveryCount

HOST = "127.0.0.1"
# Postfix's utilities live in sbin, which a non-login PATH may lack.
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])


def which(program: str) -> str | None:
    return shutil.which(program, path=SBIN_PATH)


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


async def wait_listening(port: int, timeout: float, alive: ServerProcess | None = None) -> None:
    """Return once something accepts on 127.0.0.1:`port`; fail early if `alive` exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive.running():
            raise RuntimeError(
                f"server exited with status {alive.returncode()}; {alive.log_path} ends with:\n{alive.log_tail()}"
            )
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 1.0)
        except (TimeoutError, OSError):
            await asyncio.sleep(0.05)
            continue
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout:.0f} s")


class ServerProcess:
    """One foreground server process started by the bench, with its output in `log_path`."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log_path = log_path
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the server; after `grace` seconds SIGKILL the session it leads (the
        session was created for it, so this reaches only what it forked)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)


class System(ABC):
    """A mail server the benchmark sends to. Subclasses set `name` and `port`."""

    name: str
    port: int
    # Whether it keeps messages: smtp-sink does not, so it has no end-to-end time.
    stores = True
    # True when emptying the store restarts the server: the harness then warms it up again.
    cold_after_empty = False

    def __init__(self, workdir: Path, recipient: str) -> None:
        self.workdir = workdir / self.name
        self.recipient = recipient

    @abstractmethod
    def missing(self) -> str | None:
        """Why this system cannot run on this machine (a package to install), or None."""

    @abstractmethod
    async def start(self) -> None:
        """Write its configuration under `workdir`, start it, return once it accepts SMTP."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop everything `start` started; idempotent."""

    @abstractmethod
    async def empty_store(self) -> None:
        """Make the store empty before a run (and let the server settle)."""

    @abstractmethod
    def pids(self) -> list[int]:
        """Roots of the server's process trees, for the RSS sum."""

    def deliveries(self) -> DeliveryCount | None:
        """How to count messages that reached the store (None: it stores nothing)."""
        return None

    def versions(self) -> dict[str, str]:
        return {}

    def check_port_free(self) -> None:
        if port_in_use(self.port):
            raise RuntimeError(f"{self.name}: 127.0.0.1:{self.port} is already in use")
