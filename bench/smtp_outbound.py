"""Outbound relay throughput: submissions in, SMTP out through a send connector, messages/s.

20 submitters (by default) call `TransportService.submit` concurrently, in-process, as the 587
listener's sessions do once authenticated; each message has one recipient at sink.test, which
a smart host send connector routes to a remote sink on loopback. The transport is the real
one (`tests/integration/outbound_env.build_outbound`: queue with group commit and fsync'ed
blobs, SMTP stage with its pipelining client, connection reuse and per-destination limit).

Sink: Postfix's `smtp-sink` in its own process when installed (stores nothing: the ceiling of
the remote side), else our own listener in this process (`--sink inproc`, which then shares
the CPU with the transport). Figures:
- accept rate: submissions committed per second (the 250 a client would get);
- relay rate: messages whose 250 from the sink is recorded in the queue, per second, from the
  first submission to the last record (end to end);
- latency from submission to recorded relay, p50 and p99;
- queue transactions (group commits) and units; sink connections (reuse).

Usage: `.venv/bin/python bench/smtp_outbound.py [--messages 2000] [--submitters 20]
[--size 10240] [--sink smtp-sink|inproc]`. Everything listens on 127.0.0.131 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from courriel.org.model import SendConnector  # noqa: E402
from courriel.transport.deliver.connections import Connections  # noqa: E402
from tests.integration.outbound_env import Directory, Outbound, Peer, build_outbound, fast_config  # noqa: E402

HOST, PORT = "127.0.0.131", 2531


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def wait_listening(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def run(args: argparse.Namespace, workdir: Path) -> None:
    sink_process = None
    peer = None
    if args.sink == "smtp-sink":
        binary = shutil.which("smtp-sink")
        if binary is None:
            raise SystemExit("smtp-sink is not installed (apt-get install postfix); use --sink inproc")
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        sink_process = subprocess.Popen([binary, *user, f"{HOST}:{PORT}", "1024"], stdout=subprocess.DEVNULL)
        await wait_listening(HOST, PORT)
    else:
        peer = await Peer(HOST, PORT, name="sink.test").start()
    connector = SendConnector(
        name="Sink",
        address_spaces=(("sink.test", 1),),
        dns_routing_enabled=False,
        smart_hosts=(HOST,),
        port=PORT,
    )
    out: Outbound = await build_outbound(
        workdir,
        Directory([connector]),
        config=fast_config(message_retry_interval=5.0),
        scan_interval=5.0,
        connections=Connections(per_destination=args.connections),
    )
    body = (b"x" * 78 + b"\r\n") * max(1, args.size // 80)
    submitted: dict[str, float] = {}
    counter = iter(range(args.messages))

    async def submitter() -> None:
        for i in counter:
            started = time.time()
            accepted = await out.submit(
                "bench@corp.test", [f"user{i % 50}@sink.test"], body, subject=f"bench {i}"
            )
            submitted[accepted.queue_id] = started

    try:
        start = time.time()
        await asyncio.gather(*(submitter() for _ in range(args.submitters)))
        accepted_s = time.time() - start
        await out.until(lambda: out.smtp.relayed >= args.messages, timeout=600, what="every message relayed")
        # The tracking log's SEND line is written right after the relay is recorded.
        relayed_at = {
            e["internal_message_id"]: datetime.fromisoformat(e["timestamp"]).timestamp()
            for e in out.events("SEND", limit=10**7)
        }
        relay_s = max(relayed_at.values()) - start
        latencies = [relayed_at[m] - submitted[m] for m in submitted if m in relayed_at]
        print(
            f"messages {args.messages} x {len(body)} B body, {args.submitters} submitters, sink {args.sink}, "
            f"up to {args.connections} connections"
        )
        print(f"accept rate   {args.messages / accepted_s:8.0f} msg/s  ({accepted_s:.2f} s)")
        print(
            f"relay rate    {args.messages / relay_s:8.0f} msg/s  ({relay_s:.2f} s, submission to recorded 250)"
        )
        print(
            f"latency       p50 {percentile(latencies, 0.5) * 1000:6.1f} ms   p99 {percentile(latencies, 0.99) * 1000:6.1f} ms"
        )
        committer = out.queue.committer
        print(f"queue         {committer.batches} group commits for {committer.units} units")
        if peer is not None:
            print(f"sink          {len(peer.messages)} messages over {peer.connections} connections")
    finally:
        await out.close()
        if peer is not None:
            await peer.stop()
        if sink_process is not None:
            sink_process.terminate()
            sink_process.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--submitters", type=int, default=20)
    parser.add_argument("--size", type=int, default=10240, help="body size in bytes (80-byte lines)")
    parser.add_argument("--connections", type=int, default=20, help="sessions per destination")
    parser.add_argument(
        "--sink",
        choices=("smtp-sink", "inproc"),
        default="smtp-sink" if shutil.which("smtp-sink") else "inproc",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where the queue and blobs go (default: a temporary directory)"
    )
    args = parser.parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args, args.workdir))
        return
    with tempfile.TemporaryDirectory(prefix="courriel-outbound-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
