"""Connections for the line protocols around sans-I/O engines: a buffered input, idle timeouts,
STARTTLS with the plaintext buffer dropped, back-pressure both ways.

The SMTP listener, the POP3 back end and the Client Access IMAP4/POP3 front ends run their
sessions on a `Connection` (it has no mailbox import, so `courriel.clientaccess` may use it);
the IMAP4 back end has its own slotted protocol and shares `upgrade`. A `Connection` is an
`asyncio.Protocol` rather than a stream so that it owns its input buffer: bytes read before a
STARTTLS/STLS upgrade are dropped here and never reach the TLS session (RFC 3207 §4.2,
RFC 2595 §3.1, RFC 9051 §11.1; the CVE-2011-0411 injection). Reading pauses once the buffer
holds `INPUT_HIGH_WATER` bytes, and writes wait while the transport's buffer is full, so a slow
peer pushes back on us.

`StreamListeners` runs `handler(connection)` for each accepted connection. Its `stop()` ends
idle sessions at once (`receive` raises `Shutdown`, the handler says goodbye in its protocol)
and gives busy ones a grace period (listener.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Final

from courriel.services.listener import TLS_HANDSHAKE_TIMEOUT, Listeners

log = logging.getLogger(__name__)

INPUT_HIGH_WATER: Final = 256 * 1024
WRITE_TIMEOUT: Final = 60.0  # a peer that reads nothing for this long is dropped
CLOSE_WAIT: Final = 5.0  # how long the last words may wait for a peer that does not read


class Shutdown(Exception):
    """The service is stopping: say goodbye and close."""


async def upgrade(
    transport: asyncio.Transport,
    protocol: asyncio.BaseProtocol,
    context: ssl.SSLContext,
    ready: bytes,
    *,
    timeout: float,
    peer: str,
) -> asyncio.Transport | None:
    """Send `ready` (the reply that invites the handshake) and start TLS as the server.

    Nothing is awaited between the write and the upgrade, so no byte of the client's handshake
    can be read as plaintext; the caller drops what it read before. None when the handshake
    fails (the connection is then aborted).
    """
    transport.write(ready)
    try:
        upgraded = await asyncio.get_running_loop().start_tls(
            transport, protocol, context, server_side=True, ssl_handshake_timeout=timeout
        )
    except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as error:
        log.info("TLS handshake with %s failed: %s", peer, error)
        transport.abort()
        return None
    if upgraded is None:
        return None
    assert isinstance(upgraded, asyncio.Transport)
    return upgraded


class Connection(asyncio.Protocol):
    """One accepted connection; the handler task calls `receive`, `write`, `start_tls`."""

    def __init__(self, listeners: StreamListeners, implicit_tls: bool) -> None:
        self.listeners = listeners
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
        self._stopping = self.listeners.stopping  # accepted just as the service stopped
        self.listeners.connections.add(self)
        self.task = asyncio.get_running_loop().create_task(self.listeners.serve(self))

    def data_received(self, data: bytes) -> None:
        self._inbox += data
        self._wake()
        if len(self._inbox) >= INPUT_HIGH_WATER and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        # Keep our side open for the last reply. A TLS transport cannot stay half-open: asyncio
        # closes it whatever we answer, and warns when the answer is True.
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

    @property
    def has_input(self) -> bool:
        """Input, or the end of it, is waiting to be taken by `receive`."""
        return bool(self._inbox) or self._eof or self._lost

    def extra_info(self, name: str) -> Any:
        """The transport's `get_extra_info(name)` ("cipher", "ssl_object" …)."""
        return self._transport.get_extra_info(name) if self._transport is not None else None

    def shutdown(self) -> None:
        self._stopping = True
        self._wake()

    async def wait_lost(self) -> None:
        """Until the connection is closed, by either side."""
        await self._gone.wait()

    async def receive(self, timeout: float, *, stoppable: bool = True) -> bytes | None:
        """The input that has arrived; b"" once the peer has closed; None after `timeout`
        seconds without input. Raises `Shutdown` when the service stops, unless `stoppable` is
        False (an SMTP transaction may finish)."""
        loop = asyncio.get_running_loop()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self._wake()

        while not self.has_input:
            if self._stopping and stoppable:
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
        if self._stopping and stoppable:
            raise Shutdown
        data = bytes(self._inbox)
        self._inbox.clear()
        if self._reading_paused and self._transport is not None and not self._lost:
            self._transport.resume_reading()
            self._reading_paused = False
        return data

    async def write(self, data: bytes) -> None:
        """Send; wait while the transport's buffer is full, and drop a peer that reads nothing
        for the listeners' `write_timeout` (None: no limit of its own)."""
        if not data or self._transport is None or self._lost:
            return
        self._transport.write(data)
        if self._writable.is_set():
            return
        limit = self.listeners.write_timeout
        if limit is None:
            await self._writable.wait()
            return
        try:
            await asyncio.wait_for(self._writable.wait(), limit)
        except TimeoutError:
            self.abort()

    async def start_tls(self, ready: bytes) -> bool:
        """Send `ready` (the +OK / OK / 220 that invites the handshake) and upgrade the
        connection; what the peer sent before our answer is dropped (CVE-2011-0411). False when
        there is no TLS here or the handshake fails."""
        transport, context = self._transport, self.listeners.tls
        if transport is None or context is None or self._lost:
            return False
        self._inbox.clear()
        upgraded = await upgrade(
            transport, self, context, ready, timeout=self.listeners.handshake_timeout, peer=self.peer[0]
        )
        if upgraded is None:
            return False
        self._transport = upgraded
        self._reading_paused = False
        self.tls_active = True
        return True

    async def close(self, last: bytes = b"") -> None:
        """Send `last`, then close once what was written has gone out (waiting `CLOSE_WAIT`
        at most for a peer that does not read)."""
        if self._transport is not None and not self._lost:
            if last:
                self._transport.write(last)
            if not self._writable.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._writable.wait(), CLOSE_WAIT)
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


Handler = Callable[[Connection], Awaitable[None]]


class StreamListeners(Listeners[Connection]):
    """The listening sockets of one service (for instance POP3 on 1110 and 1995), whose
    connections are each served by `handler`."""

    def __init__(
        self,
        name: str,
        handler: Handler,
        tls: ssl.SSLContext | None,
        *,
        reuse_port: bool = False,
        handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT,
        write_timeout: float | None = WRITE_TIMEOUT,
    ) -> None:
        super().__init__(
            lambda implicit_tls: Connection(self, implicit_tls),
            tls,
            reuse_port=reuse_port,
            handshake_timeout=handshake_timeout,
        )
        self.name = name
        self.handler = handler
        self.write_timeout = write_timeout

    async def serve(self, connection: Connection) -> None:
        """The task of one connection: its handler, then the close."""
        try:
            await self.handler(connection)
        except Shutdown:
            pass
        except Exception:
            log.exception("%s session with %s failed", self.name, connection.peer[0])
        finally:
            self.connections.discard(connection)
            await connection.close()
