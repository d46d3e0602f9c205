"""End-to-end inbound SMTP throughput: Courriel beside its peers, in the same run.

Method of `/work/shared/research/peer-baseline.md`: 10 KB messages (10,240-byte payload plus
headers), one message per connection, at concurrency 1, 20 and 100, N messages per run.
Systems: `courriel` (a fresh demo organization), `aiosmtpd-fsync` (baseline (a): fsync before
250), `postfix-dovecot` (baseline (b): Postfix → LMTP → Dovecot Maildir) and `smtp-sink`
(the ceiling: stores nothing). Each round runs every system at every concurrency -- at one
concurrency the systems run back to back, in an order rotated per round -- after one
unrecorded warm-up per system. Stores are emptied before every run, and the machine's
background load is sampled for 0.5 s first (`bg_busy_frac`).

Per run: accept time (until the generator got all its 250 replies), end-to-end time (until
the store holds every accepted message), p50/p99 latency (loadgen only), peak RSS of the
server's process tree, machine CPU. Output: a table of medians with in-round ratios to the
references, and every run as JSON in `bench/results/`.

Usage: `.venv/bin/python bench/smtp_inbound.py [--systems a,b] [--rounds 3] ...` (`--help`);
`--serve` starts the `--systems` and keeps them up until Ctrl-C. Every server listens on
127.0.0.1 only and is stopped at the end, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from courriel_system import Courriel
from generators import Accepted, Generator, Load, choose
from loadgen import percentile
from peers.postfix_dovecot import PostfixDovecot
from peers.single_process import AiosmtpdFsync, SmtpSink
from peers.system import System
from procfs import CpuTimes, RssPeak, busy_fraction, listening, not_loopback, tree, tree_pss_bytes
from report import RunResult, run_line, summarize, table, write_json
from watch import DeliveryCount

BENCH = Path(__file__).resolve().parent
SYSTEMS: dict[str, type[System]] = {
    "courriel": Courriel,
    "aiosmtpd-fsync": AiosmtpdFsync,
    "postfix-dovecot": PostfixDovecot,
    "smtp-sink": SmtpSink,
}
SENDER = "a@x.test"
RECIPIENT = "alice@example.test"
# Warm-ups of a server restarted for a run go to the other mailbox, so the measured one
# starts empty.
WARM_RECIPIENT = "bob@example.test"
POLL = 0.01


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated, from: %(default)s")
    p.add_argument(
        "--concurrency", default="1,20,100", help="parallel sessions per run, comma-separated (%(default)s)"
    )
    p.add_argument("--messages", type=int, default=2000, help="messages per run (%(default)s)")
    p.add_argument(
        "--warmup", type=int, default=200, help="messages of the unrecorded warm-up (%(default)s; 0: none)"
    )
    p.add_argument(
        "--rounds", type=int, default=1, help="rounds, system order rotated per round (%(default)s)"
    )
    p.add_argument(
        "--timeout", type=float, default=300, help="seconds a run may last, accept and delivery (%(default)s)"
    )
    p.add_argument(
        "--size", type=int, default=10240, help="payload bytes per message, headers excluded (%(default)s)"
    )
    p.add_argument(
        "--generator",
        choices=("auto", "smtp-source", "loadgen"),
        default="auto",
        help="auto: smtp-source when installed, else loadgen; latency needs loadgen (%(default)s)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=BENCH.parent / "var" / "bench",
        help="configs, stores and logs of the servers (%(default)s)",
    )
    p.add_argument(
        "--results", type=Path, default=BENCH / "results", help="where the JSON goes (%(default)s)"
    )
    p.add_argument(
        "--courriel", type=Path, default=None, help="the courriel executable (default: beside this Python)"
    )
    p.add_argument(
        "--serve", action="store_true", help="only start the systems and keep them up until Ctrl-C"
    )
    args = p.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        p.error(f"unknown systems {unknown}; known: {', '.join(SYSTEMS)}")
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        p.error(f"--concurrency takes numbers separated by commas, not {args.concurrency!r}")
    if args.messages < 1 or args.rounds < 1 or min(args.concurrency) < 1:
        p.error("--messages, --rounds and --concurrency must be positive")
    return args


def make_systems(args: argparse.Namespace) -> tuple[list[System], dict[str, str]]:
    """The systems that can run here, and a note for each one skipped."""
    ready: list[System] = []
    skipped: dict[str, str] = {}
    for name in args.systems:
        system = (
            Courriel(args.workdir, RECIPIENT, args.courriel)
            if name == "courriel"
            else SYSTEMS[name](args.workdir, RECIPIENT)
        )
        reason = system.missing()
        if reason is None:
            ready.append(system)
        else:
            skipped[name] = reason
            print(f"skipping {name}: {reason}")
    return ready, skipped


async def start_checked(system: System) -> None:
    """Start and verify that every TCP listener of its processes is on loopback."""
    await system.start()
    exposed = not_loopback(listening(tree(system.pids())))
    if exposed:
        raise RuntimeError(f"listens beyond loopback: {exposed}")


async def wait_delivered(counter: DeliveryCount, target: int, deadline: float) -> tuple[int, float | None]:
    """Poll until `target` deliveries are counted; returns (count, when) -- when is None on
    reaching the deadline first."""
    while True:
        count = counter.count()
        if count >= target:
            return count, time.monotonic()
        if time.monotonic() > deadline:
            return count, None
        await asyncio.sleep(POLL)


class Bench:
    def __init__(self, args: argparse.Namespace, generator: Generator) -> None:
        self.args = args
        self.generator = generator
        self.counters: dict[str, DeliveryCount | None] = {}

    def load(self, system: System, messages: int, concurrency: int, recipient: str = RECIPIENT) -> Load:
        return Load(system.port, messages, concurrency, self.args.size, SENDER, recipient, self.args.timeout)

    def counter(self, system: System) -> DeliveryCount | None:
        if system.name not in self.counters:
            self.counters[system.name] = system.deliveries()
        return self.counters[system.name]

    async def warm_up(self, system: System, recipient: str) -> None:
        """An unrecorded run, waited for until delivered, so the server's caches, pools and
        processes are as they will be in the measured runs."""
        if self.args.warmup <= 0:
            return
        counter = self.counter(system)
        if counter is not None:
            counter.mark()
        concurrency = min(20, max(self.args.concurrency))
        accepted = await self.generator.send(self.load(system, self.args.warmup, concurrency, recipient))
        if counter is not None:
            await wait_delivered(counter, accepted.sent, time.monotonic() + self.args.timeout)
        if accepted.sent < self.args.warmup:
            print(
                f"  warm-up of {system.name}: {accepted.sent}/{self.args.warmup} accepted {accepted.detail}"
            )

    async def measure(self, system: System, rnd: int, position: int, concurrency: int) -> RunResult:
        await system.empty_store()
        if system.cold_after_empty:
            await self.warm_up(system, WARM_RECIPIENT)
        counter = self.counter(system)
        bg = await busy_fraction(0.5)
        if counter is not None:
            counter.mark()
        load = self.load(system, self.args.messages, concurrency)
        cpu_before = CpuTimes.now()
        rss = RssPeak(system.pids)
        rss.start()
        try:
            accepted, delivered, delivered_at = await self.follow(load, counter)
        finally:
            peak = await rss.stop()
        pss = tree_pss_bytes(system.pids())
        e2e_s = None
        if delivered_at is not None and accepted.sent:
            e2e_s = max(delivered_at, accepted.finished) - accepted.started
        return RunResult(
            round=rnd,
            position=position,
            system=system.name,
            concurrency=load.concurrency,
            messages=load.messages,
            generator=self.generator.name,
            bg_busy_frac=round(bg, 3),
            sent=accepted.sent,
            failed=accepted.failed,
            delivered=delivered if system.stores else None,
            timed_out=accepted.timed_out,
            accept_s=round(accepted.seconds, 3),
            accept_rate=round(accepted.sent / accepted.seconds, 1) if accepted.seconds > 0 else 0.0,
            e2e_s=None if e2e_s is None else round(e2e_s, 3),
            e2e_rate=None if e2e_s is None else round(accepted.sent / e2e_s, 1),
            p50_ms=percentile(accepted.latencies_ms, 50),
            p99_ms=percentile(accepted.latencies_ms, 99),
            peak_rss_mib=round(peak / 2**20, 1),
            pss_mib_end=round(pss / 2**20, 1),
            cpu_s=round(CpuTimes.now().busy_seconds_since(cpu_before), 2),
            note=accepted.detail if accepted.sent < load.messages else "",
        )

    async def follow(
        self, load: Load, counter: DeliveryCount | None
    ) -> tuple[Accepted, int | None, float | None]:
        """Send `load` while watching the store. Returns what the generator saw, the count of
        deliveries, and when the store held every accepted message (None: not in time)."""
        deadline = time.monotonic() + self.args.timeout
        sending = asyncio.create_task(self.generator.send(load))
        delivered_at: float | None = None
        delivered: int | None = None
        try:
            while not sending.done():
                if counter is not None and counter.poll_during_run and delivered_at is None:
                    delivered = counter.count()
                    if delivered >= load.messages:
                        delivered_at = time.monotonic()
                await asyncio.sleep(POLL)
            accepted = sending.result()
        finally:
            if not sending.done():
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)
        if counter is not None and delivered_at is None:
            delivered, delivered_at = await wait_delivered(counter, accepted.sent, deadline)
            if not counter.poll_during_run and delivered_at is not None:
                # Stored before its 250: the store was complete when the last reply came.
                delivered_at = min(delivered_at, accepted.finished)
        return accepted, delivered, delivered_at


def describe(args: argparse.Namespace, generator: Generator, skipped: dict[str, str]) -> dict[str, Any]:
    """The `meta` of the JSON: what ran, how, where."""
    return {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "generator": generator.name,
        "messages": args.messages,
        "warmup": args.warmup,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "size": args.size,
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "skipped": skipped,
        "versions": {},
    }


async def start_all(systems: list[System], meta: dict[str, Any]) -> list[System]:
    """Start each system; one that cannot start is noted in `meta` and left out."""
    started = []
    for system in systems:
        try:
            await start_checked(system)
        except Exception as exc:  # the other systems still run
            await system.stop()
            meta["skipped"][system.name] = f"could not start: {exc}"
            print(f"skipping {system.name}: could not start: {exc}")
            continue
        started.append(system)
        meta["versions"][system.name] = system.versions()
        print(f"{system.name}: listening on 127.0.0.1:{system.port}")
    return started


async def stop_all(systems: list[System]) -> None:
    for system in reversed(systems):
        try:
            await system.stop()
        except Exception as exc:  # stop the others all the same
            print(f"{system.name}: stopping failed: {exc}", file=sys.stderr)


async def rounds(bench: Bench, started: list[System], meta: dict[str, Any]) -> list[RunResult]:
    args = bench.args
    runs: list[RunResult] = []
    for system in started:
        if not system.cold_after_empty:
            await system.empty_store()
            await bench.warm_up(system, RECIPIENT)
    for rnd in range(1, args.rounds + 1):
        shift = (rnd - 1) % max(1, len(started))
        order = started[shift:] + started[:shift]
        print(f"round {rnd}: {', '.join(s.name for s in order)}")
        for concurrency in args.concurrency:
            for position, system in enumerate(list(order)):
                try:
                    result = await bench.measure(system, rnd, position, concurrency)
                except Exception as exc:  # report and drop a system that fails, keep the others
                    print(f"  {system.name} failed at c={concurrency}: {exc!r}; dropping it")
                    meta["skipped"][system.name] = f"failed in round {rnd} at c={concurrency}: {exc!r}"
                    order.remove(system)
                    started.remove(system)
                    await system.stop()
                    continue
                runs.append(result)
                print(run_line(result), flush=True)
    return runs


def finish(args: argparse.Namespace, meta: dict[str, Any], runs: list[RunResult]) -> None:
    summaries = summarize(runs)
    print()
    print(f"medians over {args.rounds} round(s); msgs/s; ratios within each round, then median:")
    print(table(summaries, args.rounds))
    if any(s.ratios for s in summaries):
        print(
            "e2e/pd, acc/pd: end-to-end and accept rate over postfix-dovecot's; /aio: over aiosmtpd-fsync's"
        )
    if meta["generator"] != "loadgen":
        print("p50/p99 latency: only with --generator loadgen (smtp-source reports none)")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.results / f"smtp_inbound-{stamp}.json"
    write_json(out, meta, runs, summaries)
    print(f"results: {out}")


async def run(args: argparse.Namespace) -> int:
    generator = choose(args.generator)
    systems, skipped = make_systems(args)
    meta = describe(args, generator, skipped)
    try:
        started = await start_all(systems, meta)
        if args.serve:
            if not started:
                return 1
            print("serving until Ctrl-C")
            await asyncio.Event().wait()
        print(f"generator: {generator.name}; {args.messages} messages of {args.size} bytes per run")
        runs = await rounds(Bench(args, generator), started, meta)
    finally:
        await stop_all(systems)
    if not runs:
        print("no runs")
        return 1
    finish(args, meta, runs)
    return 0


def run_until_done(bench_run: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> None:
    """Run a bench's `run(args)` and exit with its status; SIGTERM ends it like Ctrl-C (the
    main task is cancelled, so its `finally` stops the servers)."""

    async def guarded() -> int:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await bench_run(args)

    try:
        sys.exit(asyncio.run(guarded()))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)


def main() -> None:
    run_until_done(run, parse_args())


if __name__ == "__main__":
    main()
