"""Inbound SMTP through Client Access → Mailbox, beside the co-located server, in one run (issue #5).

The seed lets an organization run Client Access and Mailbox on one computer or on two; this
measures what the second costs. Two systems, each its own organization (example.test, one
mailbox alice@ in the database BENCH), on the same directory and mailbox engine:

* `colocated`: one `courriel serve` with both roles, on 127.0.0.1. Its "Default Frontend"
  hands each transaction to the local transport in process (roles/server.py).
* `split`: a client-access-only server `cas` on 127.0.0.10 and a mailbox-only server `mbx` on
  127.0.0.11, two processes sharing one directory. "Default Frontend cas" proxies each
  transaction over SMTP, server-authenticated, to "Default mbx" (25 + offset) and answers 250
  only after the back end did. `cas` also listens on 127.0.0.1, the only address the bench's
  generators send to.

The harness is `smtp_inbound.py`'s (`Bench`, `rounds`): one unrecorded warm-up per system,
then per round, for each concurrency, every system once, in an order rotated per round; the
machine's busy fraction is sampled for 0.5 s before each run. Accept time: until the
generator got its 250s; end to end: until the Mailbox server's tracking log has a DELIVER
line per accepted message, written once the mailbox database committed it (`watch.py`).
Unlike smtp_inbound, the stores are not emptied between runs (that would mean a new
organization and a cold server each time): each run counts only the deliveries after its
start, and alice's mailbox grows by the same number of messages in both systems.

Per run: accept and end-to-end messages/s, p50/p99 latency (loadgen), peak RSS of all the
system's process trees (report.py's figures), and per server the peak RSS and the CPU
seconds of its process tree. Printed as tables of medians; split/colocated ratios are taken
within each round, then their median; everything also goes to `bench/results/topology-*.json`.

Engines: PostgreSQL (default; fresh databases for each system's directory and mailbox
database, dropped at the end) or `--engine sqlite` (both servers of `split` open one SQLite
directory file; the mailbox database is a SQLite file on the Mailbox server).

Usage: `.venv/bin/python bench/topology.py [--rounds 3] [--engine sqlite] ...` (`--help`).
Every server is stopped at the end, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from courriel_system import default_executable
from generators import Generator, choose
from mailbox_store import DEFAULT_PG, drop_database, postgres_database
from peers.system import HOST, ServerProcess, System, port_in_use
from procfs import RssPeak, listening, tree, tree_cpu_seconds
from report import RunResult, in_round_ratios, median, summarize, table, write_json
from smtp_inbound import RECIPIENT, Bench, describe, rounds, run_until_done, start_all, stop_all
from watch import DeliveryCount, LogTail, tracking_deliver

BENCH = Path(__file__).resolve().parent
DOMAIN = "example.test"
DATABASE = "BENCH"
PASSWORD = "courriel-bench"
GENERATOR_HOST = HOST  # where generators.py sends
SMTP = 25  # the seed's port of "Default Frontend" and of "Default <server>" on a stand-alone Mailbox
SPLIT_OFFSET_STEP = 3000  # split's ports sit above colocated's (seed ports end at 2525)
# Below the test suite's offsets (10000 and up, tests/conftest.py free_offset): a test server
# bound with SO_REUSEPORT on one of our ports would silently take part of the bench's sessions.
DEFAULT_OFFSET = 3000
HIGHEST_SEED_PORT = 2525
# split / colocated figures: RunResult fields (cpu_s: the whole machine's), then the servers' own CPU.
RATIOS = ("accept_rate", "e2e_rate", "p50_ms", "p99_ms", "peak_rss_mib", "cpu_s", "servers_cpu")
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Member:
    """One server of a system: its `courriel init` options and where its SMTP must listen."""

    name: str
    roles: str
    listen: tuple[str, ...]
    connector: str  # the receive connector the bench's mail reaches on this server

    @property
    def mailbox(self) -> bool:
        return "mailbox" in self.roles.split(",")


TOPOLOGIES: dict[str, tuple[Member, ...]] = {
    "colocated": (Member("colo", "client-access,mailbox", ("127.0.0.1",), "Default Frontend colo"),),
    # The Mailbox server first: it starts first and the front end finds it listening.
    "split": (
        Member("mbx", "mailbox", ("127.0.0.11",), "Default mbx"),
        Member("cas", "client-access", ("127.0.0.10", GENERATOR_HOST), "Default Frontend cas"),
    ),
}


async def until_listening(proc: ServerProcess, expected: list[tuple[str, int]], timeout: float) -> None:
    """Return once the server's process tree holds a listener on every (address, port)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running():
            raise RuntimeError(
                f"server exited ({proc.returncode()}); {proc.log_path} ends with:\n{proc.log_tail(20)}"
            )
        pid = proc.pid
        if pid is not None and set(expected) <= set(listening(tree([pid]))):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(
        f"no listener on {expected} after {timeout:.0f} s; {proc.log_path} ends with:\n{proc.log_tail(20)}"
    )


class Databases:
    """The engine's databases: PostgreSQL ones are created here and all dropped by `drop()`."""

    def __init__(self, engine: str, admin_url: str) -> None:
        self.engine = engine
        self.admin_url = admin_url
        self.created: list[str] = []

    async def new(self, sqlite_path: str) -> str:
        """A fresh database URL: PostgreSQL, or the SQLite file `sqlite_path`."""
        if self.engine == "sqlite":
            return f"sqlite:///{sqlite_path}"
        url = await postgres_database(self.admin_url)
        if url is None:
            raise RuntimeError(f"PostgreSQL does not answer at {self.admin_url}")
        self.created.append(url)
        return url

    async def drop(self) -> None:
        for url in self.created:
            try:
                await drop_database(self.admin_url, url)
            except Exception as exc:  # drop the others all the same
                print(f"dropping {url} failed: {exc}", file=sys.stderr)
        self.created.clear()


class Organization(System):
    """A system of one or more `courriel serve` processes sharing one organization directory.

    Set up once, on the first `start()`, with the CLI as an administrator would; the servers
    then stay up for the whole bench.
    """

    cold_after_empty = False

    def __init__(self, name: str, workdir: Path, offset: int, databases: Databases, executable: Path) -> None:
        self.name = name
        super().__init__(workdir, RECIPIENT)
        self.members = TOPOLOGIES[name]
        self.offset = offset
        self.port = SMTP + offset
        self.databases = databases
        self.executable = executable
        self.procs: dict[str, ServerProcess] = {}
        self._set_up = False

    def config(self, member: Member) -> Path:
        return self.workdir / member.name / "courriel.toml"

    def missing(self) -> str | None:
        if not self.executable.exists():
            return f"{self.executable} does not exist (make the venv: make test, or pip install -e .)"
        return None

    def cli(self, member: Member, *args: str, stdin: str | None = None) -> None:
        argv = [str(self.executable), "--config", str(self.config(member)), *args]
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(
                f"courriel {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
            )

    async def set_up(self) -> None:
        """`courriel init` (then `init --join`), the database, alice, the connection limits."""
        shutil.rmtree(self.workdir, ignore_errors=True)  # an earlier run's; its databases were dropped
        self.workdir.mkdir(parents=True)
        directory = await self.databases.new(str(self.workdir / "directory.db"))
        for i, member in enumerate(self.members):
            first = i == 0
            self.cli(
                member,
                "init",
                *(
                    ["--organization", f"Courriel Bench {self.name}", "--domain", DOMAIN]
                    if first
                    else ["--join"]
                ),
                "--server",
                member.name,
                "--fqdn",
                f"{member.name}.{DOMAIN}",
                "--roles",
                member.roles,
                "--listen",
                ",".join(member.listen),
                "--port-offset",
                str(self.offset),
                "--directory-url",
                directory,
            )
        store = next(m for m in self.members if m.mailbox)
        url = await self.databases.new(f"databases/{DATABASE}.db")
        self.cli(store, "database", "new", DATABASE, "--server", store.name, "--url", url)
        self.cli(
            store, "mailbox", "new", RECIPIENT, "--database", DATABASE, "--password-stdin", stdin=PASSWORD
        )
        # Every bench session comes from one address (the front end's, in split): the default
        # MaxInboundConnectionPerSource (20, as Exchange's) would refuse part of c=20.
        for member in self.members:
            self.cli(
                member,
                "receive-connector",
                "set",
                member.connector,
                "--server",
                member.name,
                "--max-inbound-connection-per-source",
                "1000",
            )
        self._set_up = True

    async def start(self) -> None:
        if port_in_use(self.port, GENERATOR_HOST):
            raise RuntimeError(f"{GENERATOR_HOST}:{self.port} is already in use")
        if not self._set_up:
            await self.set_up()
        for member in self.members:
            proc = ServerProcess(
                [str(self.executable), "--config", str(self.config(member)), "serve"],
                self.workdir / f"{member.name}.log",
            )
            self.procs[member.name] = proc
            proc.start()
            await until_listening(proc, [(host, self.port) for host in member.listen], START_TIMEOUT)

    async def stop(self) -> None:
        for member in reversed(self.members):
            proc = self.procs.pop(member.name, None)
            if proc is not None:
                await proc.stop(grace=20)

    async def empty_store(self) -> None:
        """Nothing to do: each run counts the deliveries after its own start (module docstring)."""

    def member_pids(self, name: str) -> list[int]:
        proc = self.procs.get(name)
        pid = None if proc is None else proc.pid
        return [] if pid is None else [pid]

    def pids(self) -> list[int]:
        return [pid for member in self.members for pid in self.member_pids(member.name)]

    def deliveries(self) -> DeliveryCount:
        store = next(m for m in self.members if m.mailbox)
        data = self.config(store).parent / "data"
        return LogTail(data / "logs" / "tracking", "MSGTRK*.log", tracking_deliver)


class TopologyBench(Bench):
    """smtp_inbound's Bench, plus peak RSS and CPU seconds of each server's process tree."""

    def __init__(self, args: argparse.Namespace, generator: Generator) -> None:
        super().__init__(args, generator)
        self.per_server: list[dict[str, Any]] = []

    async def measure(self, system: System, rnd: int, position: int, concurrency: int) -> RunResult:
        assert isinstance(system, Organization)
        samplers: dict[str, RssPeak] = {}
        cpu: dict[str, float] = {}
        for member in system.members:
            samplers[member.name] = RssPeak(functools.partial(system.member_pids, member.name))
            samplers[member.name].start()
            cpu[member.name] = tree_cpu_seconds(system.member_pids(member.name))
        try:
            result = await super().measure(system, rnd, position, concurrency)
        finally:
            peaks = {name: await sampler.stop() for name, sampler in samplers.items()}
        for member in system.members:
            spent = tree_cpu_seconds(system.member_pids(member.name)) - cpu[member.name]
            record = {
                "round": rnd,
                "system": system.name,
                "concurrency": concurrency,
                "server": member.name,
                "roles": member.roles,
                "peak_rss_mib": round(peaks[member.name] / 2**20, 1),
                "cpu_s": round(spent, 2),
                "cpu_s_per_1k": round(1000 * spent / result.sent, 1) if result.sent else None,
            }
            self.per_server.append(record)
        return result


def ratios(runs: list[RunResult], per_server: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """split / colocated per concurrency: median over rounds of the in-round ratio."""
    totals = servers_cpu(per_server)
    out = []
    for concurrency in sorted({r.concurrency for r in runs}):
        row: dict[str, Any] = {"concurrency": concurrency}
        for metric in RATIOS[:-1]:
            row[metric] = median(in_round_ratios(runs, "split", concurrency, "colocated", metric))
        row["servers_cpu"] = median(
            totals[(rnd, "split", concurrency)] / totals[(rnd, "colocated", concurrency)]
            for rnd in {r.round for r in runs}
            if totals.get((rnd, "colocated", concurrency)) and (rnd, "split", concurrency) in totals
        )
        out.append(row)
    return out


def servers_cpu(per_server: list[dict[str, Any]]) -> dict[tuple[int, str, int], float]:
    """CPU seconds per 1,000 messages of all the system's servers, per (round, system, c)."""
    total: dict[tuple[int, str, int], float] = {}
    for r in per_server:
        if r["cpu_s_per_1k"] is not None:
            key = (r["round"], r["system"], r["concurrency"])
            total[key] = total.get(key, 0.0) + r["cpu_s_per_1k"]
    return total


def server_table(per_server: list[dict[str, Any]]) -> str:
    """Per server, then their sum for a system of several: peak RSS (max over rounds), CPU
    seconds per 1,000 messages (median over rounds)."""
    lines = [f"{'system':<10} {'c':>3}  {'server':<6} {'roles':<22} {'RSS MiB':>8} {'CPU s/1k':>9}"]

    def line(system: str, c: int, server: str, roles: str, rss: float, cpu: float | None) -> None:
        cpu_text = "-" if cpu is None else f"{cpu:.1f}"
        lines.append(f"{system:<10} {c:>3}  {server:<6} {roles:<22} {rss:>8.1f} {cpu_text:>9}")

    totals = servers_cpu(per_server)
    for c, system in sorted({(r["concurrency"], r["system"]) for r in per_server}):
        mine = [r for r in per_server if (r["concurrency"], r["system"]) == (c, system)]
        servers = sorted({r["server"] for r in mine})
        for server in servers:
            runs = [r for r in mine if r["server"] == server]
            rss = max(r["peak_rss_mib"] for r in runs)
            line(system, c, server, runs[0]["roles"], rss, median(r["cpu_s_per_1k"] for r in runs))
        if len(servers) > 1:
            rss_sum = sum(max(r["peak_rss_mib"] for r in mine if r["server"] == s) for s in servers)
            cpu_sum = median(v for (_, sy, cc), v in totals.items() if (sy, cc) == (system, c))
            line(system, c, "all", "", rss_sum, cpu_sum)
    return "\n".join(lines)


def ratio_table(rows: list[dict[str, Any]]) -> str:
    head = RATIOS
    lines = ["  c  " + "  ".join(f"{h:>12}" for h in head)]
    for row in rows:
        cells = ["-" if row[h] is None else f"{row[h]:.2f}x" for h in head]
        lines.append(f"{row['concurrency']:>3}  " + "  ".join(f"{c:>12}" for c in cells))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--systems", default="colocated,split", help="comma-separated, from: %(default)s")
    p.add_argument(
        "--concurrency", default="1,20", help="parallel sessions per run, comma-separated (%(default)s)"
    )
    p.add_argument("--messages", type=int, default=500, help="messages per run (%(default)s)")
    p.add_argument(
        "--warmup", type=int, default=100, help="messages of the unrecorded warm-up (%(default)s; 0: none)"
    )
    p.add_argument(
        "--rounds", type=int, default=3, help="rounds, system order rotated per round (%(default)s)"
    )
    p.add_argument(
        "--timeout", type=float, default=300, help="seconds a run may last, accept and delivery (%(default)s)"
    )
    p.add_argument(
        "--size", type=int, default=10240, help="payload bytes per message, headers excluded (%(default)s)"
    )
    p.add_argument(
        "--generator",
        choices=("loadgen", "smtp-source"),
        default="loadgen",
        help="loadgen gives p50/p99 latency; smtp-source is lighter on CPU (%(default)s)",
    )
    p.add_argument(
        "--engine",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="directory and mailbox database engine (%(default)s)",
    )
    p.add_argument(
        "--pg",
        default=DEFAULT_PG,
        help="PostgreSQL admin URL; databases are created and dropped (%(default)s)",
    )
    p.add_argument(
        "--port-offset",
        type=int,
        default=DEFAULT_OFFSET,
        help=f"colocated's port offset; split's is {SPLIT_OFFSET_STEP} above (%(default)s)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=BENCH.parent / "var" / "bench-topology",
        help="configs, stores and logs (%(default)s)",
    )
    p.add_argument(
        "--results", type=Path, default=BENCH / "results", help="where the JSON goes (%(default)s)"
    )
    p.add_argument(
        "--courriel", type=Path, default=None, help="the courriel executable (default: beside this Python)"
    )
    args = p.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.systems if s not in TOPOLOGIES]
    if unknown:
        p.error(f"unknown systems {unknown}; known: {', '.join(TOPOLOGIES)}")
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        p.error(f"--concurrency takes numbers separated by commas, not {args.concurrency!r}")
    if args.messages < 1 or args.rounds < 1 or min(args.concurrency) < 1:
        p.error("--messages, --rounds and --concurrency must be positive")
    if not 0 <= args.port_offset < 32768 - SPLIT_OFFSET_STEP - HIGHEST_SEED_PORT:
        p.error("--port-offset must leave both systems' ports below 32768")
    return args


def finish(
    args: argparse.Namespace, meta: dict[str, Any], runs: list[RunResult], per_server: list[dict[str, Any]]
) -> None:
    summaries = summarize(runs)
    split_ratios = ratios(runs, per_server)
    print()
    print(f"medians over {args.rounds} round(s); msgs/s; RSS: peak of all the system's processes;")
    print("CPU: the whole machine's (other tenants included)")
    print(table(summaries, args.rounds))
    print()
    print("per server: peak RSS of its process tree (max over rounds),")
    print("its own CPU seconds per 1,000 messages (median over rounds)")
    print(server_table(per_server))
    if any(r["e2e_rate"] is not None or r["accept_rate"] is not None for r in split_ratios):
        print()
        print("split / colocated, ratio within each round, median over rounds:")
        print(ratio_table(split_ratios))
    meta["per_server"] = per_server
    meta["split_over_colocated"] = split_ratios
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.results / f"topology-{stamp}.json"
    write_json(out, meta, runs, summaries)
    print(f"results: {out}")


async def run(args: argparse.Namespace) -> int:
    generator = choose(args.generator)
    databases = Databases(args.engine, args.pg)
    executable = args.courriel or default_executable()
    args.workdir = args.workdir / args.engine
    systems: list[System] = [
        Organization(name, args.workdir, args.port_offset + i * SPLIT_OFFSET_STEP, databases, executable)
        for i, name in enumerate(TOPOLOGIES)
        if name in args.systems
    ]
    meta = describe(args, generator, {})
    meta["engine"] = args.engine
    meta["topologies"] = {
        s.name: [{"server": m.name, "roles": m.roles, "listen": list(m.listen)} for m in TOPOLOGIES[s.name]]
        for s in systems
    }
    runs: list[RunResult] = []
    bench = TopologyBench(args, generator)
    try:
        for system in systems:
            missing = system.missing()
            if missing is not None:
                raise SystemExit(f"{system.name}: {missing}")
        started = await start_all(systems, meta)
        print(f"generator: {generator.name}; {args.messages} messages of {args.size} bytes per run;")
        print(f"engine: {args.engine}")
        runs = await rounds(bench, started, meta)
    finally:
        await stop_all(systems)
        await databases.drop()
    if not runs:
        print("no runs")
        return 1
    finish(args, meta, runs, bench.per_server)
    return 0


def main() -> None:
    run_until_done(run, parse_args())


if __name__ == "__main__":
    main()
