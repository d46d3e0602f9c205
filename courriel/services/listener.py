"""Listening sockets for the line protocols: SMTP, and IMAP4 and POP3 on back and front ends.

`Listeners` is one service's sockets — a STARTTLS port and an implicit-TLS port (RFC 8314) on
each listen address, on the same ports in every worker process (SO_REUSEPORT: the kernel
spreads the connections) — and the connections they accepted, each an `asyncio.Protocol` of
the service's making (stream.py's buffered `Connection`, or imap/connection.py's slotted one)
that runs its session in a task. `stop()` closes the sockets, asks every connection to
`shutdown()` (a session waiting for input ends at once, in its protocol's words) and gives busy
ones a grace period before cancelling them.

Every listener calls `small_tls_reads`: asyncio's TLS receive buffer is the largest part of an
idle TLS connection, and it is a process-wide setting.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
import threading
from asyncio import sslproto
from collections.abc import Callable
from typing import Final, Generic, Protocol, TypeVar

from courriel.services.port_claim import PortClaim, claimed

TLS_HANDSHAKE_TIMEOUT: Final = 30.0
TLS_READ_SIZE: Final = 8 * 1024
CANCEL_WAIT: Final = 5.0  # after the grace period, how long cancelled sessions may take to end


def small_tls_reads() -> None:
    """asyncio's TLS protocol allocates (and zero-fills) a `max_size` receive buffer per
    connection, 256 KiB: with 1,000 idle TLS sessions that was 250 MiB of 295 KiB each. Reads
    of 8 KiB cost a few more calls on a large APPEND and nothing else. And the buffer only
    holds bytes between the socket read and their copy into the TLS object's input, both in
    one call of the event loop (`get_buffer`, then `buffer_updated`), so one buffer per
    thread serves every connection: another 8 KiB less per connection. Process-wide (every
    TLS server and client of the process shares the class), which is what a server wants."""
    if sslproto.SSLProtocol.max_size > TLS_READ_SIZE:
        sslproto.SSLProtocol.max_size = TLS_READ_SIZE
    # Selector loops only: a proactor loop (Windows) fills the buffer after get_buffer returns.
    if sys.platform != "win32" and not getattr(sslproto.SSLProtocol, "_courriel_shared_buffer", False):
        _share_tls_read_buffer(sslproto.SSLProtocol)


_READ_BUFFERS = threading.local()  # one per thread: each event loop reads on its own thread


def _share_tls_read_buffer(cls: type[sslproto.SSLProtocol]) -> None:
    """Make `cls` read into its thread's buffer instead of a buffer of its own."""
    original_init = cls.__init__

    def __init__(self: sslproto.SSLProtocol, *args: object, **kwargs: object) -> None:
        original_init(self, *args, **kwargs)  # type: ignore[arg-type]
        self._ssl_buffer = self._ssl_buffer_view = _NO_BUFFER  # type: ignore[attr-defined]

    def get_buffer(self: sslproto.SSLProtocol, n: int) -> memoryview:
        view: memoryview | None = getattr(_READ_BUFFERS, "view", None)
        if view is None or len(view) < self.max_size:
            view = _READ_BUFFERS.view = memoryview(bytearray(self.max_size))
        self._ssl_buffer_view = view  # type: ignore[attr-defined]  # what buffer_updated copies from
        return view

    cls.__init__ = __init__  # type: ignore[method-assign]
    cls.get_buffer = get_buffer  # type: ignore[method-assign]
    cls._courriel_shared_buffer = True  # type: ignore[attr-defined]


_NO_BUFFER = memoryview(b"")


class Accepted(Protocol):
    """What `Listeners` needs of a connection: its session task, and a way to end it early."""

    task: asyncio.Task[None] | None

    def shutdown(self) -> None:
        """The service is stopping: end the session once it is waiting for input."""


C = TypeVar("C", bound=Accepted)


class Listeners(Generic[C]):
    """The listening sockets of one service and the connections they accepted.

    `factory(implicit_tls)` makes the protocol of each accepted connection; the connection adds
    itself to `connections` when its session starts and leaves when it ends.
    """

    def __init__(
        self,
        factory: Callable[[bool], asyncio.BaseProtocol],
        tls: ssl.SSLContext | None,
        *,
        reuse_port: bool = False,
        handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.factory = factory
        self.tls = tls
        self.reuse_port = reuse_port  # every worker process listens on the same ports
        self.handshake_timeout = handshake_timeout
        self.stopping = False
        self.connections: set[C] = set()
        self._servers: list[tuple[str, int, asyncio.Server]] = []
        self._claims: list[PortClaim] = []  # this server's hold on the shared ports (port_claim.py)

    async def listen(self, host: str, port: int, *, implicit_tls: bool) -> int:
        """Start listening, with TLS from the first byte or not; returns the bound port (useful
        with port 0)."""
        if implicit_tls and self.tls is None:
            raise ValueError("implicit TLS needs a TLS context")
        small_tls_reads()
        with claimed(host, port, self.reuse_port) as held:
            server = await asyncio.get_running_loop().create_server(
                lambda: self.factory(implicit_tls),
                host,
                port,
                ssl=self.tls if implicit_tls else None,
                ssl_handshake_timeout=self.handshake_timeout if implicit_tls else None,
                reuse_port=self.reuse_port or None,
            )
        if held is not None:
            self._claims.append(held)
        bound = int(server.sockets[0].getsockname()[1])
        self._servers.append((host, bound, server))
        self.stopping = False
        return bound

    def bound(self) -> list[tuple[str, int]]:
        """(host, port) of every listening socket."""
        return [(host, port) for host, port, _ in self._servers]

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (none before `listen` and after `stop`)."""
        return tuple(sock for _, _, server in self._servers for sock in server.sockets)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; idle sessions end now, busy ones get `grace` seconds."""
        self.stopping = True
        for _, _, server in self._servers:
            server.close()
        for held in self._claims:
            held.release()
        self._claims.clear()
        connections = list(self.connections)
        for connection in connections:
            connection.shutdown()
        tasks = [c.task for c in connections if c.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=CANCEL_WAIT)
        for _, _, server in self._servers:
            await server.wait_closed()
        self._servers.clear()
