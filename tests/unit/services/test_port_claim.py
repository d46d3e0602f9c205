"""Claims on shared listening ports (services/port_claim.py): the processes of one server share
a port; a process of another server is told who serves it, and gets it once that one is gone."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from courriel.services import port_claim

# Another server's process: its own lock file, a claim on the port, then it waits.
OTHER_SERVER = textwrap.dedent(
    """
    import asyncio, os, sys
    from pathlib import Path
    from courriel.services import port_claim

    async def main():
        lock = Path(sys.argv[1]) / "server.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT)
        port_claim.set_owner(lock)
        held = port_claim.claim("127.0.0.1", int(sys.argv[2]))
        print("held" if held is not None else "none", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[Path]:
    """This process as a server: its lock file open, claims on."""
    lock = tmp_path / "ours" / "server.lock"
    lock.parent.mkdir()
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    port_claim.set_owner(lock)
    try:
        yield lock
    finally:
        port_claim._owner = None
        os.close(fd)


def random_port() -> int:
    """A port number no other test run claims at the same time (claim names are machine-wide)."""
    return 40000 + int.from_bytes(os.urandom(2)) % 20000


async def test_without_an_owner_nothing_is_claimed() -> None:
    assert port_claim.claim("127.0.0.1", 25) is None


async def test_the_processes_of_one_server_share_a_port(owner: Path) -> None:
    port = random_port()
    first = port_claim.claim("127.0.0.1", port)
    assert first is not None
    try:
        assert port_claim.claim("127.0.0.1", port) is None  # held by this server already
    finally:
        first.release()
    again = port_claim.claim("127.0.0.1", port)
    assert again is not None
    again.release()


async def test_a_sibling_process_holding_the_servers_lock_shares_the_port(owner: Path) -> None:
    """A worker: another process with this server's lock file open (inherited, in real life)."""
    port = random_port()
    sibling = subprocess.Popen(
        [sys.executable, "-c", OTHER_SERVER, str(owner.parent), str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert sibling.stdout is not None and sibling.stdout.readline() == "held\n"
        assert port_claim.claim("127.0.0.1", port) is None
    finally:
        sibling.kill()
        sibling.wait(10)


async def test_another_servers_port_is_refused_until_it_is_gone(owner: Path, tmp_path: Path) -> None:
    port = random_port()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_SERVER, str(theirs), str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None and other.stdout.readline() == "held\n"
        with pytest.raises(OSError) as refused:
            port_claim.claim("127.0.0.1", port)
        assert refused.value.errno == errno.EADDRINUSE
        assert refused.value.strerror == (
            f"127.0.0.1:{port} is served by another Courriel server (pid {other.pid}, data directory {theirs})"
        )
        elsewhere = port_claim.claim("127.0.0.2", port)  # another address is another claim
        assert elsewhere is not None
        elsewhere.release()
    finally:
        other.kill()
        other.wait(10)
    mine = port_claim.claim("127.0.0.1", port)
    assert mine is not None
    mine.release()
