"""A listening port belongs to one server, though every worker of it binds the port.

The workers share each port with SO_REUSEPORT (the kernel spreads the connections), and the
kernel lets any process of the same user join such a port: a second Courriel server given the
same address and port would bind without an error and silently take part of the connections.
So the first process of a server to listen on an address and port also holds a claim on it, a
listening Unix socket in the abstract namespace named after the address and port. A process
that finds the claim taken asks the kernel who holds it (SO_PEERCRED) and looks at that
process's open files: if it holds this server's instance lock (roles/server.py, inherited by
every worker) it is a sibling and the port is shared; otherwise `claim` raises EADDRINUSE,
naming the other server, and the caller does not listen (as with any port already in use).

Claims are on once `set_owner` has named the server's lock file (roles/server.py does before
the workers start); a process that never calls it, such as a test, listens as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_ATTEMPTS = 3  # a holder that lets go while we look: claim again, a few times at most

_owner: Path | None = None


def set_owner(lock_file: Path) -> None:
    """Turn claims on for this process and its future workers: `lock_file` is the instance lock
    that every process of this server holds open."""
    global _owner
    _owner = lock_file.resolve()


class PortClaim:
    """A held claim: the Unix socket, kept until `release`. Siblings that connect to look at it
    are accepted and closed by the event loop, so they never fill its backlog."""

    __slots__ = ("_loop", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._drain)

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while True:
                conn, _ = self._sock.accept()
                conn.close()

    def release(self) -> None:
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()


def claim(host: str, port: int) -> PortClaim | None:
    """Claim `host:port` for this server before listening on it with SO_REUSEPORT.

    Returns the claim to release when the listener stops, or None when there is nothing to hold
    (claims are off, or another process of this server holds it). Raises OSError(EADDRINUSE)
    when a process of another server holds it."""
    if _owner is None:
        return None
    name = f"\0courriel-listen {host} {port}".encode()
    for _ in range(_ATTEMPTS):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.bind(name)
            sock.listen(16)
            return PortClaim(sock)
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
        holder = _holder(name)
        if holder is None:
            continue  # it let go between our bind and our look: claim again
        if _holds_lock(holder, _owner):
            return None
        raise OSError(errno.EADDRINUSE, f"{host}:{port} is served by another Courriel server ({_describe(holder, _owner.name)})")
    return None


@contextlib.contextmanager
def claimed(host: str, port: int, shared: bool) -> Iterator[PortClaim | None]:
    """`claim` around a listener's bind: only for a port shared with SO_REUSEPORT (`shared`;
    port 0 never is), and released again if the bind fails."""
    held = claim(host, port) if shared and port else None
    try:
        yield held
    except BaseException:
        if held is not None:
            held.release()
        raise


def _holder(name: bytes) -> int | None:
    """The pid of the process listening on the abstract socket `name`, or None if none is."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(name)
        except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
            return None
        pid, _uid, _gid = _UCRED.unpack(probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return int(pid)


def _open_files(pid: int) -> list[str]:
    """Where the process's descriptors point (empty if it is gone or not ours to look at)."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return []
    targets = []
    for fd in fds:
        with contextlib.suppress(OSError):
            targets.append(os.readlink(f"{fd_dir}/{fd}"))
    return targets


def _holds_lock(pid: int, lock_file: Path) -> bool:
    return pid == os.getpid() or str(lock_file) in _open_files(pid)


def _describe(pid: int, lock_name: str) -> str:
    """The other server as its instance lock tells it: the pid written there and its data
    directory; else the holder's own pid."""
    for target in _open_files(pid):
        lock = Path(target)
        if lock.name == lock_name:
            with contextlib.suppress(OSError, ValueError):
                return f"pid {int(lock.read_text())}, data directory {lock.parent}"
            return f"pid {pid}, data directory {lock.parent}"
    return f"pid {pid}"
