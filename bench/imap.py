"""IMAP figures of Courriel beside Dovecot, in one run, on the same 10,000-message mailbox.

The method is the peer baseline's (`/work/shared/research/peer-baseline.md` §3 and §5),
with both servers measured minutes apart by the same client (`imapclient_min.py`) on the
same messages (`mailbox_gen.py`, fixed seed), all on 127.0.0.1, plaintext IMAP (RFC 9051):

* Dovecot: the private instance of `peers/postfix_dovecot.py` (Dovecot only, IMAP on
  127.0.0.1:2143, Maildir as the `mail` user, any user with password `pass`); its Maildir is
  filled by writing files into `cur/` with the flags suffix (`:2,S`, `:2,FS`).
  `mail_max_userip_connections` is raised (50 clients and the IDLE test log in as one user
  from one address). For the IDLE test it is restarted in its lean mode (`service imap {
  client_limit = 100, service_count = 0 }`, the baseline's 132 MiB row) and
  `fs.inotify.max_user_instances` is raised and restored.
* Courriel: `courriel demo init`, `imap-settings set --login-type PlainTextLogin
  --max-connections-per-user …`, Inbox of alice filled in-process through
  `MailboxDatabase.deliver_many` before `serve`; measured on the Mailbox back end
  (127.0.0.1:11143), not through the Client Access front end.

Single client: a cold pass (first access after start: Dovecot has no index yet, Courriel's
process is new) and `--warm` warm passes (median). Then 50 clients for `--seconds` doing
SELECT + header FETCH, then server memory with `--idle` connections in IDLE (RFC 2177).
Every server started is stopped at the end, also on an error or SIGTERM.

    .venv/bin/python bench/imap.py [--idle 10000] [--systems courriel,dovecot]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import signal
import ssl
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from courriel_system import Courriel
from imapclient_min import ImapError, MiniImap, search_hits
from mailbox_gen import GenMessage, generate, meeting_hits
from peers.postfix_dovecot import IMAP_PORT, PostfixDovecot, run_daemon
from peers.system import HOST, wait_listening
from procfs import CpuTimes, tree_pss_bytes, tree_rss_bytes

MIB = 1024 * 1024
PER_SOURCE = 10_000  # connections per loopback source address (see source_address)
HEADER_FETCH = "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])"
INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")
USER, IDLE_USER = "alice", "bob"


class DovecotImap(PostfixDovecot):
    """The baseline's Dovecot instance alone (no Postfix), with a benchmark Maildir."""

    name = "dovecot"
    port = IMAP_PORT
    password = "pass"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, f"{USER}@example.test")
        self.extra = ""

    def login_name(self, user: str) -> str:
        return user

    def _write_config(self) -> None:
        super()._write_config()
        with self.dovecot_conf.open("a") as f:
            f.write("protocol imap {\n  mail_max_userip_connections = 100000\n}\n" + self.extra)

    async def start(self) -> None:
        await self.stop()
        self.check_port_free()
        self._write_config()
        run_daemon(["dovecot", "-c", str(self.dovecot_conf)], self.workdir / "dovecot" / "start.log")
        await wait_listening(self.port, 30)

    def lean_idle(self, connections: int) -> None:
        """Shared imap processes, 100 clients each: Dovecot's smallest memory per IDLE."""
        self.extra = (
            f"default_client_limit = {connections + 1000}\n"
            "service imap {\n  client_limit = 100\n  service_count = 0\n"
            f"  process_limit = {connections // 100 + 10}\n}}\n"
        )

    async def fill(self, messages: list[GenMessage]) -> None:
        await self.stop()
        self._write_config()
        maildir = self.mail / USER / "Maildir"
        shutil.rmtree(self.mail / USER, ignore_errors=True)
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True)
        uid, gid = self.mail.stat().st_uid, self.mail.stat().st_gid
        for i, m in enumerate(messages):
            stamp = int(m.internaldate.timestamp())
            flags = ("F" if m.flagged else "") + ("S" if m.seen else "")
            # Zero-padded names: Dovecot gives UIDs in name order, as Courriel in delivery order.
            path = maildir / "cur" / f"{stamp}.M{i:05d}P1.bench,S={len(m.data)}:2,{flags}"
            path.write_bytes(m.data)
            os.utime(path, (stamp, stamp))  # Maildir INTERNALDATE is the file's mtime
        for p in [self.mail / USER, *maildir.rglob("*"), maildir]:
            os.chown(p, uid, gid)

    async def make_cold(self) -> None:
        """Delete the mailbox's index files, as the baseline did before each run."""
        for p in (self.mail / USER / "Maildir").glob("dovecot.index*"):
            p.unlink()


class CourrielImap(Courriel):
    """Courriel's demo organization; alice's Inbox filled before the server starts."""

    name = "courriel"
    port = 11143  # Mailbox back end, plaintext LOGIN allowed by PlainTextLogin
    password = "courriel-demo"

    def login_name(self, user: str) -> str:
        return f"{user}@example.test"

    async def fill(self, messages: list[GenMessage]) -> None:
        await self.stop()
        shutil.rmtree(self.org, ignore_errors=True)
        self.org.parent.mkdir(parents=True, exist_ok=True)
        self._cli("demo", "init", str(self.org))
        self._cli(
            "--config", str(self.config), "imap-settings", "set", "--login-type", "PlainTextLogin",
            "--max-connections-per-user", "1000000",
        )  # fmt: skip
        await _courriel_deliver(self.config, f"{USER}@example.test", messages)

    async def start(self) -> None:
        from peers.system import ServerProcess

        await self.stop()
        self.check_port_free()
        self._serves += 1
        self._proc = ServerProcess(
            [str(self.executable), "--config", str(self.config), "serve"],
            self.workdir / f"serve-{self._serves}.log",
        )
        self._proc.start()
        await wait_listening(self.port, 60, self._proc)

    async def make_cold(self) -> None:
        """Nothing to do: `measure` runs the cold pass on a process started just before."""


async def _courriel_deliver(config_path: Path, address: str, messages: list[GenMessage]) -> None:
    """Store the messages through the store API (as local delivery does), 500 per transaction."""
    from courriel.config import load_config
    from courriel.mailbox.flags import FLAGGED, SEEN
    from courriel.mailbox.model import DeliveryRequest
    from courriel.mailbox.store import MailboxDatabase
    from courriel.org.directory import Directory
    from courriel.storage.blobs import BlobStore

    config = load_config(str(config_path))
    directory = await Directory.open(config.directory_url, config.data_dir)
    try:
        recipient = await directory.get_recipient(address)
        db_info = next(d for d in await directory.list_databases() if d.name == recipient.database)
    finally:
        await directory.close()
    assert recipient.guid is not None
    db = await MailboxDatabase.open(
        db_info.name, db_info.url, config.data_dir, BlobStore(config.data_dir / "blobs")
    )
    try:
        for start in range(0, len(messages), 500):
            reqs = []
            for i, m in enumerate(messages[start : start + 500], start):
                reqs.append(
                    DeliveryRequest(
                        guid=recipient.guid,
                        owner=address,
                        blob=await db.blobs.put(m.data),
                        delivery_key=f"bench-{i}",
                        internaldate=m.internaldate,
                        flags=(SEEN if m.seen else 0) | (FLAGGED if m.flagged else 0),
                    )
                )
            results = await db.deliver_many(reqs)
            if any(r.status != "delivered" for r in results):
                raise RuntimeError(f"Courriel store refused some messages: {results[:3]}")
    finally:
        await db.close()


System = DovecotImap | CourrielImap


async def session(system: System, user: str = USER) -> MiniImap:
    client = await MiniImap.connect(HOST, system.port)
    await client.login(system.login_name(user), system.password)
    return client


def raise_nofile(sessions: int) -> None:
    """Raise this process's open-file limit for `sessions` sockets and some room (within the
    hard limit; the servers started afterwards inherit it); say so if the hard limit is short."""
    wanted = sessions + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit < sessions + 256:
        print(f"note: open files limited to {limit} (hard limit): fewer than {sessions} sessions will open")


def source_address(index: int, connections: int) -> str:
    """Loopback source address of the index-th connection: one more 127.0.0.x per
    `PER_SOURCE` connections, so that 10,000 and more never run out of ephemeral ports
    (ip_local_port_range is about 28,000 ports per source address and destination)."""
    sources = 1 + (connections - 1) // PER_SOURCE
    return f"127.0.0.{1 + index % sources}"


async def idle_session(
    system: System, user: str, source: str, tls: ssl.SSLContext | None = None, port: int | None = None
) -> MiniImap:
    """A logged-in session from `source` (plaintext, or implicit TLS with `tls` on `port`)."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(HOST, port or system.port, ssl=tls, local_addr=(source, 0), limit=1 << 16),
        60,
    )
    client = MiniImap(reader, writer, 60.0)
    try:
        greeting = await client._response()
        if not greeting.startswith(b"* OK"):
            raise ImapError(f"greeting: {greeting[:100]!r}")
        await client.login(system.login_name(user), system.password)
    except BaseException:
        await client.aclose()
        raise
    return client


async def open_idle_sessions(
    opened: list[MiniImap], connections: int, connect: Callable[[int], Awaitable[MiniImap]], label: str
) -> int:
    """Open `connections` sessions (`connect(i)` opens the i-th) that SELECT INBOX and IDLE,
    50 at a time, into `opened`: the caller closes them, also on errors. Returns the failures."""
    failures = 0

    async def one(index: int) -> None:
        nonlocal failures
        try:
            c = await connect(index)
            opened.append(c)
            await c.command("SELECT INBOX")
            await c.idle()
        except (ImapError, OSError, TimeoutError) as exc:
            failures += 1
            if failures <= 3:
                print(f"  {label}: session failed: {exc!r}", file=sys.stderr)

    for start in range(0, connections, 50):
        await asyncio.gather(*(one(i) for i in range(start, min(start + 50, connections))))
    return failures


async def median_memory(system: System) -> tuple[float, float]:
    """The server tree's (RSS, PSS) bytes: median of three samples 2 s apart."""
    samples = []
    for i in range(3):
        pids = system.pids()
        samples.append((tree_rss_bytes(pids), tree_pss_bytes(pids)))
        if i < 2:
            await asyncio.sleep(2)
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


async def single_pass(system: System, sample: list[int]) -> dict[str, float]:
    """One pass of the single-client sequence; times in ms, plus counts to check."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    c = await session(system)
    out["LOGIN"] = (time.perf_counter() - t0) * 1000
    try:
        r = await c.command("SELECT INBOX")
        out["SELECT INBOX"] = r.seconds * 1000
        r = await c.command("UID FETCH 1:* (FLAGS)", keep=False)
        out["UID FETCH 1:* (FLAGS)"], out["#flags"] = r.seconds * 1000, len(r.untagged)
        r = await c.command("FETCH 1:* (ENVELOPE BODYSTRUCTURE)", keep=False)
        out["FETCH 1:* (ENVELOPE BODYSTRUCTURE)"], out["#envelopes"] = r.seconds * 1000, len(r.untagged)
        r = await c.command("UID SEARCH TEXT meeting")
        out["UID SEARCH TEXT meeting"], out["#hits"] = r.seconds * 1000, search_hits(r)
        r = await c.command(f"UID FETCH {','.join(map(str, sample))} (BODY.PEEK[])", keep=False)
        out["500 bodies, one UID FETCH"], out["#MB"] = r.seconds * 1000, r.octets / 1e6
        t0 = time.perf_counter()
        for uid in sample:
            await c.command(f"UID FETCH {uid} (BODY.PEEK[])", keep=False)
        out["500 bodies, 500 UID FETCHes"] = (time.perf_counter() - t0) * 1000
        await c.command("LOGOUT")
    finally:
        await c.aclose()
    return out


async def concurrency(system: System, clients: int, seconds: float, count: int) -> dict[str, float]:
    """`clients` sessions loop over SELECT + 50-message header FETCH until the deadline."""
    first = await session(system)
    r = await first.command("SELECT INBOX")
    r = await first.command(f"FETCH 1:* {HEADER_FETCH}", keep=False)  # the baseline's cache fill
    prefill = r.seconds * 1000
    await first.aclose()
    sessions = await asyncio.gather(*(session(system) for _ in range(clients)))
    latencies: list[float] = []
    cpu0 = CpuTimes.now()
    start = time.perf_counter()
    deadline = start + seconds

    async def loop(c: MiniImap, rng: random.Random) -> None:
        while time.perf_counter() < deadline:
            n = rng.randint(1, max(1, count - 49))
            t0 = time.perf_counter()
            await c.command("SELECT INBOX", keep=False)
            await c.command(f"FETCH {n}:{n + 49} {HEADER_FETCH}", keep=False)
            latencies.append((time.perf_counter() - t0) * 1000)

    try:
        await asyncio.gather(*(loop(c, random.Random(i)) for i, c in enumerate(sessions)))
        elapsed = time.perf_counter() - start
        busy = CpuTimes.now().busy_fraction_since(cpu0)
    finally:
        await asyncio.gather(*(c.aclose() for c in sessions))
    q = statistics.quantiles(latencies, n=100)
    return {
        "prefill header FETCH 1:*, ms": prefill,
        "ops/s": len(latencies) / elapsed,
        "op p50, ms": q[49],
        "op p99, ms": q[98],
        "machine CPU busy, %": busy * 100,
    }


async def idle_memory(system: System, connections: int) -> dict[str, float]:
    """Server tree RSS/PSS with `connections` sessions in IDLE on an empty Inbox (bob)."""
    await asyncio.sleep(1)
    base_rss, base_pss = tree_rss_bytes(system.pids()), tree_pss_bytes(system.pids())
    opened: list[MiniImap] = []

    def connect(index: int) -> Awaitable[MiniImap]:
        return idle_session(system, IDLE_USER, source_address(index, connections))

    t0 = time.perf_counter()
    try:
        failures = await open_idle_sessions(opened, connections, connect, system.name)
        ramp = time.perf_counter() - t0
        await asyncio.sleep(5)
        rss, pss = await median_memory(system)
    finally:
        t1 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(c.aclose() for c in opened)), 60)
        close = time.perf_counter() - t1
    return {
        "connections in IDLE": connections - failures,
        "failures": failures,
        "ramp, s": ramp,
        "close, s": close,
        "RSS base, MiB": base_rss / MIB,
        "RSS idle, MiB": rss / MIB,
        "PSS base, MiB": base_pss / MIB,
        "PSS idle, MiB": pss / MIB,
        "PSS per connection, KiB": (pss - base_pss) / max(1, connections - failures) / 1024,
    }


async def measure(system: System, messages: list[GenMessage], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def step(what: str) -> None:
        print(f"  {system.name}: {what} ({time.perf_counter() - t0:.1f} s)", flush=True)

    t0 = time.perf_counter()
    await system.fill(messages)
    await system.start()
    out["fill+start, s"] = time.perf_counter() - t0
    step("filled and started")
    sample = sorted(random.Random(3).sample(range(1, len(messages) + 1), 500))
    await system.make_cold()
    out["cold"] = await single_pass(system, sample)
    warm = [await single_pass(system, sample) for _ in range(args.warm)]
    step("cold pass")
    out["warm"] = {k: statistics.median(p[k] for p in warm) for k in warm[0]}
    out["concurrency"] = await concurrency(system, args.clients, args.seconds, len(messages))
    step("concurrency")
    if isinstance(system, DovecotImap):
        system.lean_idle(args.idle)
    await system.start()  # a fresh process for the memory figure
    out["idle"] = await idle_memory(system, args.idle)
    step("IDLE memory")
    return out


def table(results: dict[str, dict[str, Any]], expected_hits: int) -> str:
    names = list(results)
    both = len(names) == 2 and "courriel" in names and "dovecot" in names
    head = "| figure | " + " | ".join(names) + (" | courriel/dovecot |" if both else " |")
    lines = [head, "|---" * (len(names) + 1 + both) + "|"]

    def row(label: str, values: list[float | None], digits: int = 1) -> None:
        cells = ["–" if v is None else f"{v:,.{digits}f}" for v in values]
        ratio = ""
        if both:
            c, d = values[names.index("courriel")], values[names.index("dovecot")]
            ratio = f" {c / d:.2f}x |" if c is not None and d else " – |"
        lines.append(f"| {label} | " + " | ".join(cells) + " |" + ratio)

    first = next(iter(results.values()))
    for phase in ("cold", "warm"):
        for key in first[phase]:
            if not key.startswith("#"):
                row(f"{key}, ms ({phase})", [results[n].get(phase, {}).get(key) for n in names])
    for key in ("#hits", "#flags", "#envelopes", "#MB"):
        row(
            f"check: {key.lstrip('#')} (warm)",
            [results[n]["warm"].get(key) for n in names],
            0 if key != "#MB" else 2,
        )
    for key in first["concurrency"]:
        row(f"50 clients: {key}", [results[n]["concurrency"].get(key) for n in names])
    for key in first["idle"]:
        row(f"IDLE: {key}", [results[n]["idle"].get(key) for n in names])
    row("fill + start, s", [results[n]["fill+start, s"] for n in names])
    hits = {n: results[n]["warm"]["#hits"] for n in names}
    agree = all(h == expected_hits for h in hits.values())
    lines.append("")
    lines.append(
        f"SEARCH TEXT meeting: expected {expected_hits}, got {hits}: {'agree' if agree else 'DISAGREE'}"
    )
    lines.append("Ratios: times and memory < 1 = Courriel lower; ops/s > 1 = Courriel faster.")
    return "\n".join(lines)


def set_inotify(value: int) -> int | None:
    """Raise fs.inotify.max_user_instances to `value`; return the old value (None: unchanged)."""
    try:
        old = int(INOTIFY.read_text())
        if old >= value:
            return None
        INOTIFY.write_text(str(value))
        return old
    except OSError as exc:
        print(f"note: cannot raise {INOTIFY}: {exc}", file=sys.stderr)
        return None


async def main(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    args.workdir = args.workdir.resolve()  # Postfix's tools want absolute paths
    t0 = time.perf_counter()
    messages = generate(args.messages)
    print(f"mailbox: {len(messages)} messages, {sum(len(m.data) for m in messages) / 1e6:.1f} MB, "
          f"'meeting' in {meeting_hits(messages)} ({time.perf_counter() - t0:.1f} s to generate)", flush=True)  # fmt: skip
    systems: dict[str, System] = {}
    for name in args.systems.split(","):
        system: System = (
            CourrielImap(args.workdir, f"{USER}@example.test")
            if name == "courriel"
            else DovecotImap(args.workdir)
        )
        why = system.missing()
        if why:
            print(f"{name}: skipped: {why}")
            continue
        systems[name] = system
    raise_nofile(args.idle)  # one socket each here; the servers inherit it
    old_inotify = set_inotify(args.idle + 1024) if "dovecot" in systems else None
    if old_inotify is not None:
        print(
            f"fs.inotify.max_user_instances raised {old_inotify} -> {args.idle + 1024} (restored at the end)"
        )
    results: dict[str, dict[str, Any]] = {}
    try:
        for name, system in systems.items():
            t1 = time.perf_counter()
            results[name] = await asyncio.wait_for(measure(system, messages, args), args.timeout)
            await system.stop()
            print(f"{name}: done in {time.perf_counter() - t1:.0f} s", flush=True)
    finally:
        for system in systems.values():
            await system.stop()
        if old_inotify is not None:
            INOTIFY.write_text(str(old_inotify))
    print()
    print(table(results, meeting_hits(messages)))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"imap-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    meta = {k: str(v) for k, v in vars(args).items()}
    meta["versions"] = {n: s.versions() for n, s in systems.items()}  # type: ignore[assignment]
    path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"JSON: {path}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default="courriel,dovecot")
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--warm", type=int, default=3, help="warm passes (median)")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--idle", type=int, default=1000, help="connections in IDLE for the memory figure")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds one system may take in all")
    p.add_argument("--workdir", type=Path, default=Path("var/bench-imap"))
    p.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    return p.parse_args(argv)


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(parse_args())))
    except asyncio.CancelledError:  # SIGTERM: servers were stopped by main's finally
        print("stopped by SIGTERM; every server started was stopped", file=sys.stderr)
        sys.exit(143)
