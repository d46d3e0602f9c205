"""Baseline (a): the smallest honest Python SMTP server, for Courriel to be measured against.

An aiosmtpd server on a plain asyncio loop (no uvloop) whose DATA handler writes the message
to a Maildir-like `tmp/`, fsync()s it in the default thread pool (so concurrent sessions
overlap their fsyncs, as the peer baseline's did), renames it into `new/`, and only then
answers 250: the same durability promise as Postfix's queue-file fsync before its 250
(RFC 5321 §6.1: once a server has accepted responsibility with 250 it must not lose the
message). No directory fsync, like Postfix and Dovecot.

Usage: `python bench/peers/aiosmtpd_fsync.py --port P --maildir D`; SIGTERM stops it. The
harness drives it through `peers.single_process.AiosmtpdFsync`. aiosmtpd is a bench-only
dependency (`pip install aiosmtpd`); this script imports nothing else from the repo.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
DEFAULT_PORT = 2527


class MaildirHandler:
    """aiosmtpd handler: one file per message, durable before the 250."""

    def __init__(self, maildir: Path) -> None:
        self.tmp = maildir / "tmp"
        self.new = maildir / "new"
        self._seq = itertools.count()
        # Maildir unique names: time, pid and a counter, then the host (Maildir(5) style).
        self._suffix = f"{os.getpid()}.{socket.gethostname()}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}.{next(self._seq)}.{self._suffix}"
        tmp_path = self.tmp / name
        content: bytes = envelope.original_content or envelope.content
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, content)
            await asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
        finally:
            os.close(fd)
        os.rename(tmp_path, self.new / name)
        return "250 2.0.0 Ok: stored"


async def serve(port: int, maildir: Path) -> None:
    from aiosmtpd.smtp import SMTP

    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    handler = MaildirHandler(maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="aiosmtpd-fsync.test", data_size_limit=64 * 1024 * 1024),
        host=HOST,
        port=port,
        backlog=1024,
    )
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(f"aiosmtpd-fsync listening on {HOST}:{port}, storing into {maildir}", flush=True)
    await stopping.wait()
    server.close()
    await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description="aiosmtpd server that fsyncs each message into a Maildir")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.maildir))


if __name__ == "__main__":
    main()
