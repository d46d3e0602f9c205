"""Courriel's server memory with many authenticated IMAP connections in IDLE (issue #3).

`bench/imap.py` measures this last, after its 10,000-message fill and the timed passes; this
runs the memory figure alone, in a minute: `courriel demo init`, PlainTextLogin, optionally
`--messages` in bob's Inbox (each session then selects a folder of that size), `serve`, then
`--idle` sessions LOGIN + SELECT INBOX + IDLE in batches of 50, over plaintext (1143) or
implicit TLS (`--tls`, 1993), plus `--offset` (20000), and the server tree's RSS/PSS (median of three samples,
`procfs.py`) before and after. The open-files limit is raised (within the hard limit) and the
sessions come from several loopback addresses past 10,000, so `--idle 10000` (the issue's
figure) and more can be measured. With `--check-delivery` it then appends a message to bob's
Inbox from a separate session and counts the idle sessions that heard of it (`* n EXISTS`)
within `--notify-within` seconds: every worker's sessions must, wherever the change was made.
With `--clients N` it first runs bench/imap.py's concurrency figure (N sessions doing SELECT +
50-message header FETCH on alice's `--alice-messages` Inbox for `--seconds`).

    .venv/bin/python bench/imap_idle.py [--idle 1000] [--tls] [--messages 0] [--check-delivery]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import ssl
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

from imap import (
    IDLE_USER,
    MIB,
    USER,
    CourrielImap,
    _courriel_deliver,
    concurrency,
    idle_session,
    median_memory,
    open_idle_sessions,
    raise_nofile,
    source_address,
)
from imapclient_min import MiniImap
from mailbox_gen import generate
from peers.system import HOST
from procfs import tree, tree_pss_bytes, tree_rss_bytes


def tls_client() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def connect(system: CourrielImap, tls: bool, source: str = HOST) -> MiniImap:
    if not tls:
        return await idle_session(system, IDLE_USER, source)
    return await idle_session(system, IDLE_USER, source, tls_client(), system.port - 1143 + 1993)


async def memory(system: CourrielImap, args: argparse.Namespace) -> dict[str, float]:
    pids = system.pids()
    await asyncio.sleep(1)
    base_rss, base_pss = tree_rss_bytes(pids), tree_pss_bytes(pids)
    opened: list[MiniImap] = []

    def one(index: int) -> Awaitable[MiniImap]:
        return connect(system, args.tls, source_address(index, args.idle))

    t0 = time.perf_counter()
    out: dict[str, float] = {}
    try:
        failures = await open_idle_sessions(opened, args.idle, one, system.name)
        out["ramp, s"] = time.perf_counter() - t0
        await asyncio.sleep(3)
        rss, pss = await median_memory(system)
        if args.check_delivery:
            out.update(await delivery_reaches_idle(system, opened, args))
        if args.hold:
            print(f"holding {args.hold:.0f} s; server pids {tree(pids)}", flush=True)
            await asyncio.sleep(args.hold)
    finally:
        await asyncio.wait_for(asyncio.gather(*(c.aclose() for c in opened)), 60)
    n = args.idle - failures
    return {
        "connections in IDLE": n,
        "failures": failures,
        **out,
        "RSS base, MiB": base_rss / MIB,
        "RSS idle, MiB": rss / MIB,
        "PSS base, MiB": base_pss / MIB,
        "PSS idle, MiB": pss / MIB,
        "PSS of the connections, MiB": (pss - base_pss) / MIB,
        "PSS per connection, KiB": (pss - base_pss) / max(1, n) / 1024,
    }


async def delivery_reaches_idle(
    system: CourrielImap, opened: list[MiniImap], args: argparse.Namespace
) -> dict[str, float]:
    """APPEND one message from another session; count idle sessions told `EXISTS` in time."""
    writer = await connect(system, False)
    t0 = time.perf_counter()
    message = b"From: a@example.test\r\nSubject: wake\r\n\r\nhello\r\n"
    await writer.command(f"APPEND INBOX {{{len(message)}+}}\r\n{message.decode()}")
    await writer.aclose()

    async def hears(c: MiniImap) -> float | None:
        try:
            while True:
                line = await asyncio.wait_for(c._reader.readline(), args.notify_within)
                if not line:
                    return None
                if line.startswith(b"* ") and line.rstrip().endswith(b"EXISTS"):
                    return time.perf_counter() - t0
        except (TimeoutError, OSError):
            return None

    heard = await asyncio.gather(*(hears(c) for c in opened))
    times = [h for h in heard if h is not None]
    return {
        "told of the APPEND": len(times),
        "not told": len(heard) - len(times),
        "told within, s (max)": max(times, default=0.0),
    }


async def main(args: argparse.Namespace) -> int:
    raise_nofile(args.idle)  # the server started below inherits it
    system = CourrielImap(args.workdir.resolve(), "alice@example.test")
    try:
        await system.fill([])
        # Its own port offset, so that it runs beside bench/imap.py (which uses 10000).
        text = system.config.read_text().replace("port_offset = 10000", f"port_offset = {args.offset}")
        if args.workers:
            text = text.replace("[server]", f"[server]\nworkers = {args.workers}", 1)
        system.config.write_text(text)
        system.port = 1143 + args.offset
        if args.messages:
            await _courriel_deliver(system.config, f"{IDLE_USER}@example.test", generate(args.messages))
        if args.clients:
            await _courriel_deliver(system.config, f"{USER}@example.test", generate(args.alice_messages))
        await system.start()
        if args.clients:
            figures = await concurrency(system, args.clients, args.seconds, args.alice_messages)
            print(f"{args.clients} clients, SELECT + 50-message header FETCH, {args.seconds:.0f} s:")
            for key, value in figures.items():
                print(f"  {key:<32} {value:,.1f}")
        result = await asyncio.wait_for(memory(system, args), args.timeout)
    finally:
        await system.stop()
    mode = f"TLS {system.port + 850}" if args.tls else f"plaintext {system.port}"
    print(f"{args.idle} sessions in IDLE over {mode}, bob's Inbox {args.messages} messages")
    for key, value in result.items():
        print(f"  {key:<32} {value:,.1f}")
    if args.keep is False:
        shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--idle", type=int, default=1000)
    p.add_argument("--tls", action="store_true", help="implicit TLS (1993 + offset) instead of plaintext")
    p.add_argument("--messages", type=int, default=0, help="messages in bob's Inbox")
    p.add_argument("--offset", type=int, default=20000, help="port offset (IMAP on 1143 + offset)")
    p.add_argument("--workers", type=int, default=0, help="server.workers (0: the config's)")
    p.add_argument("--clients", type=int, default=0, help="first, bench/imap.py's concurrency figure")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--alice-messages", type=int, default=10_000, help="alice's Inbox, for --clients")
    p.add_argument("--check-delivery", action="store_true")
    p.add_argument("--notify-within", type=float, default=5.0)
    p.add_argument("--hold", type=float, default=0.0, help="seconds to keep the sessions open (inspect)")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--workdir", type=Path, default=Path("var/bench-imap-idle"))
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
