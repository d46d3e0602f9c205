"""Sockets for the line protocols around sans-I/O engines: one task per connection, idle
timeouts, STARTTLS with the plaintext buffer dropped, graceful stop.

The POP3 back end and the Client Access IMAP4/POP3 front ends all run on this (it has no
mailbox import, so `courriel.clientaccess` may use it). A `Connection` is an `asyncio.Protocol`
rather than a stream so that it owns its input buffer: bytes read before a STARTTLS/STLS
upgrade are dropped here and never reach the TLS session (RFC 2595 §3.1, RFC 9051 §11.1; the
CVE-2011-0411 injection). Reading pauses once the buffer holds `INPUT_HIGH_WATER` bytes, and
writes wait while the transport's buffer is full, so a slow peer pushes back on us.

`small_tls_reads` shrinks asyncio's per-connection TLS receive buffer for every such server.
`ListenerGroup` is one service's listening sockets (a STARTTLS port and an implicit-TLS port,
RFC 8314, on each listen address). Its `stop()` ends idle sessions at once (`receive` raises
`Shutdown`, the handler says goodbye in its protocol) and gives busy ones a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from asyncio import sslproto
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

INPUT_HIGH_WATER = 256 * 1024
TLS_HANDSHAKE_TIMEOUT = 30.0
WRITE_TIMEOUT = 60.0  # a peer that reads nothing for this long is dropped
TLS_READ_SIZE = 8 * 1024


def small_tls_reads() -> None:
    """asyncio's TLS protocol allocates (and zero-fills) a `max_size` receive buffer per
    connection, 256 KiB: with 1,000 idle TLS sessions that was 250 MiB of 295 KiB each. Reads
    of 8 KiB cost a few more calls on a large APPEND and nothing else. Process-wide (every TLS
    server and client of the process shares the class), which is what a server wants."""
    if sslproto.SSLProtocol.max_size > TLS_READ_SIZE:
        sslproto.SSLProtocol.max_size = TLS_READ_SIZE


class Shutdown(Exception):
    """The service is stopping: say goodbye and close."""


class Connection(asyncio.Protocol):
    """One accepted connection; the handler task calls `receive`, `write`, `start_tls`."""

    def __init__(self, group: ListenerGroup, implicit_tls: bool) -> None:
        self.group = group
        self.implicit_tls = implicit_tls
        self.tls_active = implicit_tls
        self.peer: tuple[str, int] = ("", 0)
        self.task: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._inbox = bytearray()
        self._eof = False
        self._lost = False
        self._stopping = False
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._gone = asyncio.Event()

    # -- asyncio.Protocol callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peername = transport.get_extra_info("peername")
        if isinstance(peername, tuple):
            self.peer = (str(peername[0]), int(peername[1]))
        self._stopping = self.group.stopping
        self.task = asyncio.get_running_loop().create_task(self.group.serve(self))

    def data_received(self, data: bytes) -> None:
        self._inbox += data
        self._wake()
        if len(self._inbox) >= INPUT_HIGH_WATER and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        # Keep our side open for the last reply; over TLS asyncio closes regardless (and says so).
        return not self.tls_active

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._wake()
        self._writable.set()
        self._gone.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- what handlers use ------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._lost

    def shutdown(self) -> None:
        self._stopping = True
        self._wake()

    async def wait_lost(self) -> None:
        """Until the connection is closed, by either side."""
        await self._gone.wait()

    async def receive(self, timeout: float) -> bytes | None:
        """The input that has arrived; b"" once the peer has closed; None after `timeout`
        seconds without input. Raises `Shutdown` when the service stops."""
        loop = asyncio.get_running_loop()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self._wake()

        while not self._inbox and not self._eof and not self._lost:
            if self._stopping:
                raise Shutdown
            if expired:
                return None
            # A bare future and a timer: wait_for would cost a task per read.
            self._waiter = loop.create_future()
            timer = loop.call_later(timeout, expire)
            try:
                await self._waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self._stopping:
            raise Shutdown
        data = bytes(self._inbox)
        self._inbox.clear()
        if self._reading_paused and self._transport is not None and not self._lost:
            self._transport.resume_reading()
            self._reading_paused = False
        return data

    async def write(self, data: bytes) -> None:
        if not data or self._transport is None or self._lost:
            return
        self._transport.write(data)
        if not self._writable.is_set():
            try:
                await asyncio.wait_for(self._writable.wait(), WRITE_TIMEOUT)
            except TimeoutError:
                self.abort()

    async def start_tls(self, ready: bytes) -> bool:
        """Send `ready` (the +OK / OK that invites the handshake) and upgrade the connection.

        Nothing is awaited between the write and the upgrade, so no byte of the client's
        handshake can land in the plaintext buffer; what is there already was sent before our
        answer and is dropped (RFC 2595 §3.1 / CVE-2011-0411). False when the handshake fails.
        """
        transport, context = self._transport, self.group.tls
        if transport is None or context is None or self._lost:
            return False
        self._inbox.clear()
        transport.write(ready)
        try:
            upgraded = await asyncio.get_running_loop().start_tls(
                transport, self, context, server_side=True, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as error:
            log.info("TLS handshake with %s failed: %s", self.peer[0], error)
            transport.abort()
            return False
        if upgraded is None:
            return False
        assert isinstance(upgraded, asyncio.Transport)
        self._transport = upgraded
        self._reading_paused = False
        self.tls_active = True
        return True

    async def close(self) -> None:
        """Close after what was written has been sent."""
        if self._transport is not None and not self._lost:
            if not self._writable.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._writable.wait(), 5.0)
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


Handler = Callable[[Connection], Awaitable[None]]


class ListenerGroup:
    """The listening sockets of one service (for instance POP3 on 1110 and 1995)."""

    def __init__(
        self, name: str, handler: Handler, tls: ssl.SSLContext | None, *, reuse_port: bool = False
    ) -> None:
        self.name = name
        self.handler = handler
        self.tls = tls
        self.reuse_port = reuse_port  # every worker process listens on the same ports
        self.stopping = False
        self._servers: list[tuple[str, int, asyncio.Server]] = []
        self._connections: set[Connection] = set()

    async def listen(self, host: str, port: int, *, implicit_tls: bool) -> int:
        """Start listening; returns the bound port (useful with port 0)."""
        if implicit_tls and self.tls is None:
            raise ValueError("implicit TLS needs a TLS context")
        small_tls_reads()
        server = await asyncio.get_running_loop().create_server(
            lambda: Connection(self, implicit_tls),
            host,
            port,
            ssl=self.tls if implicit_tls else None,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if implicit_tls else None,
            reuse_port=self.reuse_port or None,
        )
        bound = int(server.sockets[0].getsockname()[1])
        self._servers.append((host, bound, server))
        self.stopping = False
        return bound

    def bound(self) -> list[tuple[str, int]]:
        return [(host, port) for host, port, _ in self._servers]

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def serve(self, connection: Connection) -> None:
        self._connections.add(connection)
        try:
            await self.handler(connection)
        except Shutdown:
            pass
        except Exception:
            log.exception("%s session with %s failed", self.name, connection.peer[0])
        finally:
            self._connections.discard(connection)
            await connection.close()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; idle sessions end now, busy ones get `grace` seconds."""
        self.stopping = True
        for _, _, server in self._servers:
            server.close()
        connections = list(self._connections)
        for connection in connections:
            connection.shutdown()
        tasks = [c.task for c in connections if c.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5.0)
        for _, _, server in self._servers:
            await server.wait_closed()
        self._servers.clear()
