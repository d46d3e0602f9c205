"""Courriel as a system under test: a fresh demo organization per run, on loopback.

Each run gets a new organization (`courriel demo init DIR`: recipients alice@ and
bob@example.test, anonymous inbound SMTP on "Default Frontend demo", 127.0.0.1:10025) so
that its store starts empty, as the peers' do. Before the server starts, the connector's
per-source connection limit (MaxInboundConnectionPerSource, default 20 as in Exchange) is
raised to 1000, since every benchmark session comes from 127.0.0.1. The server is
`courriel --config DIR/courriel.toml serve`, stopped with SIGTERM.

A message is end to end when Courriel's message tracking log records its DELIVER event
(one JSON line per delivered recipient in `DIR/data/logs/tracking/MSGTRK*.log`), tailed
incrementally.

Because the store is emptied by starting a new server, the process is cold at the start of
each run, unlike the peers, which stay up between runs; `cold_after_empty` tells the
harness to warm it up again (to the other recipient) before measuring.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

from peers.system import ServerProcess, System, wait_listening
from watch import DeliveryCount, LogTail, tracking_deliver

CONNECTOR = "Default Frontend demo"
PER_SOURCE_LIMIT = 1000


def default_executable() -> Path:
    """The `courriel` script beside the Python running the bench (the repo's .venv)."""
    return Path(sys.executable).parent / "courriel"


class Courriel(System):
    name = "courriel"
    port = 10025
    cold_after_empty = True

    def __init__(self, workdir: Path, recipient: str, executable: Path | None = None) -> None:
        super().__init__(workdir, recipient)
        self.executable = executable or default_executable()
        self.org = self.workdir / "demo"
        self.config = self.org / "courriel.toml"
        self._proc: ServerProcess | None = None
        self._serves = 0

    def missing(self) -> str | None:
        if not self.executable.exists():
            return f"{self.executable} does not exist (make the venv: make test, or pip install -e .)"
        return None

    def _cli(self, *args: str) -> None:
        done = subprocess.run([str(self.executable), *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(
                f"courriel {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
            )

    async def start(self) -> None:
        await self.stop()
        self.check_port_free()
        shutil.rmtree(self.org, ignore_errors=True)
        self.org.parent.mkdir(parents=True, exist_ok=True)
        self._cli("demo", "init", str(self.org))
        self._cli(
            "--config",
            str(self.config),
            "receive-connector",
            "set",
            CONNECTOR,
            "--max-inbound-connection-per-source",
            str(PER_SOURCE_LIMIT),
        )
        self._serves += 1
        self._proc = ServerProcess(
            [str(self.executable), "--config", str(self.config), "serve"],
            self.workdir / f"serve-{self._serves}.log",
        )
        self._proc.start()
        await wait_listening(self.port, 60, self._proc)

    async def stop(self) -> None:
        if self._proc is not None:
            await self._proc.stop(grace=20)
            self._proc = None

    async def empty_store(self) -> None:
        await self.start()

    def pids(self) -> list[int]:
        pid = None if self._proc is None else self._proc.pid
        return [] if pid is None else [pid]

    @property
    def log_path(self) -> Path | None:
        return None if self._proc is None else self._proc.log_path

    def deliveries(self) -> DeliveryCount:
        return LogTail(self.org / "data" / "logs" / "tracking", "MSGTRK*.log", tracking_deliver)

    def versions(self) -> dict[str, str]:
        found: dict[str, str] = {}
        try:
            found["courriel"] = importlib.metadata.version("courriel")
        except importlib.metadata.PackageNotFoundError:
            pass
        head = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        )
        if head.returncode == 0:
            found["commit"] = head.stdout.strip()
        return found
