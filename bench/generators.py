"""The two load generators, behind one call: send N messages at concurrency C, report when.

* `smtp-source` (Postfix's, C): the peer baseline's generator and the default when installed;
  light on CPU, which matters on a 2-CPU machine where the generator competes with the
  server. It reports no latency; its `-c` counter (one number per completed DATA) gives the
  count sent, and a non-zero exit means it gave up on an error reply.
* `loadgen` (bench/loadgen.py, ours): the same traffic plus per-message latency for p50/p99.

Both run as a subprocess so their CPU is spent outside the harness, whose loop meanwhile
polls the store and samples memory. Times are `time.monotonic()`, which is system-wide on
Linux, so a start recorded by the generator and an end-to-end time recorded by the harness
share one clock.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from peers.system import HOST, which


@dataclass
class Accepted:
    """What the generator saw: the accept side of a run."""

    started: float
    finished: float
    sent: int
    failed: int
    timed_out: bool
    latencies_ms: list[float] = field(default_factory=list)
    detail: str = ""

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass(frozen=True)
class Load:
    port: int
    messages: int
    concurrency: int
    size: int
    sender: str
    recipient: str
    timeout: float


class Generator(ABC):
    name: str

    @abstractmethod
    async def send(self, load: Load) -> Accepted:
        """Run the load; never longer than `load.timeout` (plus a few seconds to reap)."""


async def _run(argv: list[str], timeout: float) -> tuple[int | None, bytes, bytes]:
    """Run `argv`; kill it at `timeout`. Returns (exit status or None if killed, out, err)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        return None, out, err
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out, err


class SmtpSource(Generator):
    name = "smtp-source"

    def __init__(self, executable: str) -> None:
        self.executable = executable

    @classmethod
    def find(cls) -> SmtpSource | None:
        found = which("smtp-source")
        return None if found is None else cls(found)

    async def send(self, load: Load) -> Accepted:
        argv = [self.executable, "-c", "-s", str(load.concurrency), "-m", str(load.messages)]
        argv += ["-l", str(load.size), "-f", load.sender, "-t", load.recipient, f"{HOST}:{load.port}"]
        started = time.monotonic()
        status, out, err = await _run(argv, load.timeout)
        finished = time.monotonic()
        counts = out.replace(b"\n", b"\r").split(b"\r")
        sent = next((int(c) for c in reversed(counts) if c.strip().isdigit()), 0)
        return Accepted(
            started=started,
            finished=finished,
            sent=sent,
            failed=load.messages - sent if status != 0 else 0,
            timed_out=status is None,
            detail=err.decode(errors="replace").strip()[-500:],
        )


class LoadGen(Generator):
    name = "loadgen"

    SCRIPT = Path(__file__).resolve().with_name("loadgen.py")

    async def send(self, load: Load) -> Accepted:
        argv = [
            sys.executable,
            str(self.SCRIPT),
            f"{HOST}:{load.port}",
            "--json",
            "--timeout",
            str(load.timeout),
        ]
        argv += ["-m", str(load.messages), "-s", str(load.concurrency), "-l", str(load.size)]
        argv += ["-f", load.sender, "-t", load.recipient]
        started = time.monotonic()
        status, out, err = await _run(argv, load.timeout + 30)
        if status != 0:
            return Accepted(
                started, time.monotonic(), 0, load.messages, status is None, [], err.decode()[-500:]
            )
        result = json.loads(out)
        errors = result["errors"]
        return Accepted(
            started=result["started"],
            finished=result["finished"],
            sent=result["sent"],
            failed=result["failed"],
            timed_out=result["timed_out"],
            latencies_ms=result["latencies_ms"],
            detail="; ".join(f"{k} x{v}" for k, v in errors.items()),
        )


def choose(name: str) -> Generator:
    """`auto` takes smtp-source when installed, as the peer baseline did."""
    if name in ("auto", "smtp-source"):
        source = SmtpSource.find()
        if source is not None:
            return source
        if name == "smtp-source":
            raise SystemExit(
                "smtp-source is not installed (apt-get install postfix); try --generator loadgen"
            )
    return LoadGen()
