"""One IMAP connection on a socket: the `Wire` of an `ImapSession` and its asyncio protocol.

It is an `asyncio.Protocol`, not a stream, so that the session owns the input buffer: bytes
that arrive before a STARTTLS handshake are dropped by the session and never reach the TLS
layer (RFC 9051 §11.1; CVE-2011-0411). Reading pauses while the session has a high-water mark
of unframed input; writing waits while the transport's buffer is full and gives up on a peer
that reads nothing for `WRITE_TIMEOUT`. After COMPRESS (RFC 4978) bytes pass through a
`Deflate` between the socket (or TLS) and the session, inflated `INFLATE_CHUNK` at a time so
that reading stays paused while the session is full. Thousands of connections sit in IDLE, so
the object is slotted and holds no per-connection copies beyond what the session needs (and
its listener calls `small_tls_reads`, services/listener.py). The sockets and the STARTTLS
upgrade are those of the other line protocols (services/listener.py, services/stream.py).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import TYPE_CHECKING, Final

from courriel.proto.imap.session import ImapSession
from courriel.services.imap.deflate import Deflate
from courriel.services.stream import upgrade

if TYPE_CHECKING:
    from courriel.services.imap.server import ImapService

log = logging.getLogger(__name__)

WRITE_TIMEOUT: Final = 60.0
INFLATE_CHUNK: Final = 64 * 1024


class ImapConnection(asyncio.Protocol):
    __slots__ = (
        "_service",
        "_implicit_tls",
        "_tls",
        "_transport",
        "_session",
        "_lost",
        "_drained",
        "_deflate",
        "_paused",
        "task",
        "peer",
    )

    def __init__(self, service: ImapService, implicit_tls: bool) -> None:
        self._service = service
        self._implicit_tls = implicit_tls
        self._tls = implicit_tls
        self._transport: asyncio.Transport | None = None
        self._session: ImapSession | None = None
        self._lost = False
        self._drained: asyncio.Future[None] | None = None  # set while the transport is full
        self._deflate: Deflate | None = None  # after COMPRESS DEFLATE
        self._paused = False  # the session asked us to stop reading
        self.task: asyncio.Task[None] | None = None
        self.peer = ""

    # ---- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if isinstance(peername, tuple) else ""
        # The session exists before the first byte can arrive: nothing is read unowned.
        session = self._service.accept(self, self._implicit_tls)
        if session is None:
            transport.close()  # after the BYE that `accept` wrote
            return
        self._session = session
        self.task = asyncio.get_running_loop().create_task(self._service.run(self, session))

    @property
    def session(self) -> ImapSession | None:
        return self._session

    def data_received(self, data: bytes) -> None:
        if self._session is None:
            return
        self._service.check_placement(self._session)  # before the command these bytes carry
        if self._deflate is None:
            self._session.data_received(data)
            return
        self._deflate.feed(data)
        self._inflate()

    def _inflate(self) -> None:
        """Hand the session what the client compressed, until it has enough (it pauses us)."""
        session, deflate = self._session, self._deflate
        if session is None or deflate is None:
            return
        try:
            while not self._paused and not self._lost:
                data = deflate.inflate(INFLATE_CHUNK)
                if not data:
                    return
                session.data_received(data)
        except zlib.error as error:
            log.info("IMAP client %s sent a corrupt DEFLATE stream: %s", self.peer, error)
            self.abort()

    def eof_received(self) -> bool:
        if self._session is not None:
            self._session.eof_received()
        # Keep our side open until the session has written its last answer (TLS transports
        # cannot be half-open and warn when asked to).
        return not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._session is not None:
            self._session.eof_received()
        self._release_writer()

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._release_writer()

    def _release_writer(self) -> None:
        if self._drained is not None:
            if not self._drained.done():
                self._drained.set_result(None)
            self._drained = None

    # ---- the Wire the session writes to --------------------------------------------------------

    async def send(self, data: bytes) -> None:
        if self._lost or self._transport is None:
            return
        if self._deflate is not None:
            data = self._deflate.compress(data)
        self._transport.write(data)
        drained = self._drained
        if drained is not None:
            try:
                await asyncio.wait_for(asyncio.shield(drained), WRITE_TIMEOUT)
            except TimeoutError:
                log.info("IMAP client %s stopped reading; dropping it", self.peer)
                self.abort()

    async def start_tls(self, ready: bytes) -> bool:
        """Send `ready` and upgrade, with no await in between: a byte of the client's handshake
        can never be read as plaintext."""
        transport, listeners = self._transport, self._service.listeners
        if transport is None or listeners.tls is None or self._lost:
            return False
        upgraded = await upgrade(
            transport, self, listeners.tls, ready, timeout=listeners.handshake_timeout, peer=self.peer
        )
        if upgraded is None:
            return False
        self._transport = upgraded
        self._tls = True
        return True

    def start_compression(self, ready: bytes) -> bool:
        if self._transport is None or self._lost:
            return False
        self._transport.write(ready)
        self._deflate = Deflate()  # before any await: the client's next byte is compressed
        return True

    def pause_reading(self) -> None:
        self._paused = True
        if self._transport is not None and not self._lost:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._paused = False
        if self._transport is not None and not self._lost:
            self._transport.resume_reading()
            if self._deflate is not None:
                # Not from inside the session's own call: it is mid-way through its input.
                asyncio.get_running_loop().call_soon(self._inflate)

    def close(self) -> None:
        """Close once what was written has gone out."""
        if self._transport is not None:
            self._transport.close()

    def refuse(self, goodbye: bytes) -> None:
        """Turned away before any session (disabled, full): say why and close."""
        if self._transport is not None:
            self._transport.write(goodbye)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def shutdown(self) -> None:
        if self._session is not None:
            self._session.shutdown()
