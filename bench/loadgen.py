"""Our own SMTP load generator: smtp-source's traffic, plus per-message latency.

Postfix's `smtp-source` is the reference generator of the peer baseline, but it reports no
latency. This one sends the same traffic -- one message per connection (smtp-source without
`-d`), HELO, one MAIL FROM and one RCPT TO, no pipelining, a payload of `--size` bytes in
80-byte CRLF lines after From/To/Date/Message-Id headers, then QUIT -- with `--concurrency`
sessions in parallel, and records each message's latency from the start of connect() to the
250 reply after the end of DATA (RFC 5321 §4.1.1.4).

Bounded in count (`--messages`) and time (`--timeout` overall, `--reply-timeout` per reply).
A failed message (refused connection, a reply other than the one expected) is counted, not
retried, and the session is dropped.

Output: a JSON object on stdout with `--json` (the harness runs it as a subprocess so that
its CPU is spent outside the harness process), else a one-line summary.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import math
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field


class ReplyError(Exception):
    """The server answered with an unexpected reply code, or not at all."""


@dataclass
class LoadResult:
    attempted: int = 0
    sent: int = 0
    failed: int = 0
    timed_out: bool = False
    started: float = 0.0  # time.monotonic(): comparable with the harness's clock
    finished: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def payload(size: int) -> bytes:
    """`size` bytes of body in 80-byte lines, each starting with its line number modulo 10, as
    smtp-source builds its `-l` payload (no line starts with '.', so no dot-stuffing)."""
    lines: list[bytes] = []
    remaining = size
    number = 1
    while remaining > 0:
        length = min(80, remaining)
        text = (str(number % 10) + "X" * 77)[: max(0, length - 2)]
        lines.append(text.encode() + b"\r\n")
        remaining -= length
        number += 1
    return b"".join(lines)


class Message:
    """The fixed parts of every message; `render(n)` adds the per-message headers."""

    def __init__(self, sender: str, recipient: str, size: int) -> None:
        self.sender = sender
        self.recipient = recipient
        self.body = payload(size)
        self._id_prefix = f"{os.getpid()}.{int(time.time())}"

    def render(self, n: int) -> bytes:
        head = (
            f"From: <{self.sender}>\r\n"
            f"To: <{self.recipient}>\r\n"
            f"Date: {email.utils.formatdate(localtime=False)}\r\n"
            f"Message-Id: <{self._id_prefix}.{n}@loadgen.test>\r\n"
            "\r\n"
        )
        # RFC 5321 §4.1.1.4: the mail data ends with <CRLF>.<CRLF>.
        return head.encode() + self.body + b".\r\n"


async def expect(reader: asyncio.StreamReader, code: int, timeout: float) -> None:
    """Read one reply, multi-line included (RFC 5321 §4.2.1), and check its code."""
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ReplyError("connection closed")
        if line[3:4] != b"-":
            break
    if line[:3] != str(code).encode():
        raise ReplyError(f"expected {code}, got {line[:3].decode(errors='replace')}")


async def deliver(host: str, port: int, message: Message, n: int, helo: str, timeout: float) -> float:
    """One session, one message; returns seconds from connect() to the 250 after DATA."""
    t0 = time.monotonic()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        await expect(reader, 220, timeout)
        for command, code in (
            (f"HELO {helo}", 250),
            (f"MAIL FROM:<{message.sender}>", 250),
            (f"RCPT TO:<{message.recipient}>", 250),
            ("DATA", 354),
        ):
            writer.write(command.encode() + b"\r\n")
            await expect(reader, code, timeout)
        writer.write(message.render(n))
        await expect(reader, 250, timeout)
        latency = time.monotonic() - t0
        writer.write(b"QUIT\r\n")
        await expect(reader, 221, timeout)
        return latency
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def run_load(
    host: str,
    port: int,
    *,
    messages: int,
    concurrency: int,
    size: int = 10240,
    sender: str = "a@x.test",
    recipient: str = "alice@example.test",
    helo: str = "loadgen.test",
    timeout: float = 300.0,
    reply_timeout: float = 60.0,
) -> LoadResult:
    """Send `messages` messages over `concurrency` parallel sessions, within `timeout` s."""
    message = Message(sender, recipient, size)
    result = LoadResult()
    errors: Counter[str] = Counter()
    numbers = iter(range(messages))

    async def worker() -> None:
        for n in numbers:
            result.attempted += 1
            try:
                latency = await deliver(host, port, message, n, helo, reply_timeout)
            except (TimeoutError, OSError, ReplyError) as exc:
                result.failed += 1
                errors[str(exc) or type(exc).__name__] += 1
                continue
            result.sent += 1
            result.latencies_ms.append(latency * 1000)

    result.started = time.monotonic()
    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, messages)))]
    done, pending = await asyncio.wait(workers, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    result.finished = time.monotonic()
    result.timed_out = bool(pending)
    result.errors = dict(errors)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="SMTP load generator (one message per connection)")
    parser.add_argument("target", help="HOST:PORT of the SMTP server")
    parser.add_argument("-m", "--messages", type=int, default=100)
    parser.add_argument("-s", "--concurrency", type=int, default=1)
    parser.add_argument("-l", "--size", type=int, default=10240, help="payload bytes, headers not included")
    parser.add_argument("-f", "--sender", default="a@x.test")
    parser.add_argument("-t", "--recipient", default="alice@example.test")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for the whole run")
    parser.add_argument("--reply-timeout", type=float, default=60.0, help="seconds to wait for one reply")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    result = asyncio.run(
        run_load(
            host or "127.0.0.1",
            int(port),
            messages=args.messages,
            concurrency=args.concurrency,
            size=args.size,
            sender=args.sender,
            recipient=args.recipient,
            timeout=args.timeout,
            reply_timeout=args.reply_timeout,
        )
    )
    if args.json:
        json.dump(asdict(result), sys.stdout)
        return
    elapsed = result.finished - result.started
    p50, p99 = (percentile(result.latencies_ms, q) for q in (50, 99))
    latency = "" if p50 is None or p99 is None else f", p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    print(
        f"sent {result.sent}/{args.messages} in {elapsed:.2f} s ({result.sent / elapsed:.0f} msg/s), "
        f"failed {result.failed}{latency}"
        + (", TIMED OUT" if result.timed_out else "")
        + (f", errors {result.errors}" if result.errors else "")
    )
    sys.exit(0 if result.sent == args.messages else 1)


if __name__ == "__main__":
    main()
