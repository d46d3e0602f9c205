"""The SMTP listener: runs `courriel.proto.smtp.SmtpSession` on sockets, one task per connection.

This layer owns only I/O: it feeds the engine what the socket delivers, writes the replies of a
batch in one write, asks the connector's `SmtpPolicy` each `Decide*` question, upgrades to TLS
on `StartTLS` (RFC 3207) or from the first byte (implicit TLS, RFC 8314), and enforces the idle
and connection timeouts (421 4.4.2, RFC 5321 §4.5.3.2 asks for generous ones; Exchange uses
5 and 10 minutes). It is an `asyncio.Protocol` rather than streams so that it controls its own
input buffer: plaintext read before a STARTTLS upgrade is dropped here, never replayed into the
TLS session (CVE-2011-0411). Reading pauses while the engine waits for a decision or the buffer
is full, which is how a slow policy pushes back on a pipelining client.

A listener given `peer_server` (a binding where organization servers connect) reads the
client certificate after the handshake, implicit or STARTTLS, and tells the engine which server
it proved (`SessionInfo.authenticated_server`); the TLS context decides whether one is asked for.

A policy that raises gets the peer a `451 4.3.0` and a traceback in the log; the session goes
on. Nothing a peer does can end the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable

from courriel.core.replies import SERVICE_CLOSING, SHUTTING_DOWN, TEMP_FAILURE, TIMEOUT, Reply
from courriel.proto.smtp import (
    Action,
    Close,
    DecideAuth,
    DecideConnect,
    DecideData,
    DecideHelo,
    DecideMail,
    DecideRcpt,
    Decision,
    Send,
    SessionSettings,
    SmtpPolicy,
    SmtpSession,
    StartTLS,
    Trace,
)

log = logging.getLogger(__name__)

ProtocolLog = Callable[[str, str, str, str], None]
PeerServer = Callable[[ssl.SSLObject | None], str | None]
"""The organization server a verified client certificate names, else None (security/orgca.py)."""
"""(connector, session id, direction, line): "<" received, ">" sent, "+" connected, "-" gone, "*" event."""

INPUT_HIGH_WATER = 256 * 1024  # stop reading the socket beyond this much unprocessed input
TLS_HANDSHAKE_TIMEOUT = 60.0


class SmtpListener:
    """A listening socket whose connections are SMTP sessions under one receive connector."""

    def __init__(
        self,
        settings_factory: Callable[[tuple[str, int]], SessionSettings],
        policy_factory: Callable[[SessionSettings], SmtpPolicy],
        ssl_context: ssl.SSLContext | None,
        *,
        implicit_tls: bool = False,
        protocol_log: ProtocolLog | None = None,
        peer_server: PeerServer | None = None,
        idle_timeout: float = 300.0,
        connection_timeout: float = 600.0,
    ) -> None:
        if implicit_tls and ssl_context is None:
            raise ValueError("implicit TLS needs an SSL context")
        self.settings_factory = settings_factory
        self.policy_factory = policy_factory
        self.ssl_context = ssl_context
        self.implicit_tls = implicit_tls
        self.protocol_log = protocol_log
        self.peer_server = peer_server
        self.idle_timeout = idle_timeout
        self.connection_timeout = connection_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._stopping = False

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._server = await loop.create_server(
            lambda: _Connection(self),
            host,
            port,
            ssl=self.ssl_context if self.implicit_tls else None,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self.implicit_tls else None,
            reuse_port=reuse_port or None,
        )

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (empty before `start` and after `stop`)."""
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def port(self) -> int:
        """The bound port (useful after `start(host, 0)`)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("listener not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting; idle sessions get 421 now, busy ones up to `grace` seconds to finish."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
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
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _log(self, session: SmtpSession, direction: str, text: str) -> None:
        if self.protocol_log is None:
            return
        try:
            self.protocol_log(session.settings.connector, session.session_id, direction, text)
        except Exception:
            log.exception("protocol log failed")


class _Connection(asyncio.Protocol):
    """One SMTP connection: socket callbacks feed a buffer that the session task drains."""

    def __init__(self, listener: SmtpListener) -> None:
        self.listener = listener
        self.task: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._inbox = bytearray()
        self._eof = False
        self._lost = False
        self._stopping = False
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._idle_expired = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._session: SmtpSession | None = None

    def _peer_server(self) -> str | None:
        """The organization server this TLS connection's client certificate proved, if any."""
        finder = self.listener.peer_server
        if finder is None or self._transport is None:
            return None
        try:
            return finder(self._transport.get_extra_info("ssl_object"))
        except Exception:
            log.exception("cannot read the client certificate")
            return None

    # -- asyncio.Protocol callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peername = transport.get_extra_info("peername")
        peer = (str(peername[0]), int(peername[1])) if isinstance(peername, tuple) else ("", 0)
        self.listener._connections.add(self)
        self._stopping = self.listener._stopping  # accepted just as the listener stopped
        self.task = asyncio.get_running_loop().create_task(self._serve(peer))

    def data_received(self, data: bytes) -> None:
        self._inbox += data
        self._wake()
        if len(self._inbox) >= INPUT_HIGH_WATER and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # keep our side open until the session has written its last reply

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._wake()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _idle(self) -> None:
        self._idle_expired = True
        self._wake()

    def shutdown(self) -> None:
        """The listener stops: leave after the current transaction."""
        self._stopping = True
        self._wake()

    # -- the session task -------------------------------------------------------------------

    async def _serve(self, peer: tuple[str, int]) -> None:
        listener = self.listener
        try:
            settings = listener.settings_factory(peer)
            if listener.implicit_tls:
                settings = dataclasses.replace(settings, tls_active=True)
            elif listener.ssl_context is None and settings.tls_available:
                settings = dataclasses.replace(settings, tls_available=False)  # no certificate here
            policy = listener.policy_factory(settings)
        except Exception:
            log.exception("cannot set up an SMTP session for %s", peer)
            await self._abort(SERVICE_CLOSING)
            listener._connections.discard(self)
            return
        server = self._peer_server() if listener.implicit_tls else None
        session = self._session = SmtpSession(
            settings, peer, trace=listener.protocol_log is not None, authenticated_server=server
        )
        listener._log(session, "+", f"{peer[0]}:{peer[1]} {settings.connector}")
        try:
            async with asyncio.timeout(listener.connection_timeout):
                await self._converse(session, policy)
        except TimeoutError:
            await self._abort(TIMEOUT)
        except asyncio.CancelledError:
            await self._abort(SHUTTING_DOWN)
            raise
        except Exception:
            log.exception("SMTP session %s failed", session.session_id)
            await self._abort(SERVICE_CLOSING)
        finally:
            listener._connections.discard(self)
            if self._transport is not None:
                self._transport.close()
            listener._log(session, "-", "")
            try:
                policy.disconnected(session.info())
            except Exception:
                log.exception("policy.disconnected failed for %s", session.session_id)

    async def _converse(self, session: SmtpSession, policy: SmtpPolicy) -> None:
        actions = session.start()
        while await self._perform(session, policy, actions):
            data = await self._receive(session)
            if isinstance(data, Reply):
                await self._abort(data)
                return
            actions = session.feed(data) if data else session.eof()

    async def _perform(self, session: SmtpSession, policy: SmtpPolicy, actions: list[Action]) -> bool:
        """Carry out actions, answering decisions as they come; False once the session is over."""
        queue = deque(actions)
        out = bytearray()
        while queue:
            action = queue.popleft()
            if isinstance(action, Send):
                out += action.data
                self._log_sent(action.data)
            elif isinstance(action, Trace):
                self.listener._log(session, "<", action.line)
            elif isinstance(action, StartTLS):
                if not await self._start_tls(bytes(out)):
                    return False
                out.clear()
                queue.extend(session.tls_started(self._peer_server()))
            elif isinstance(action, Close):
                await self._write(bytes(out))
                return False
            else:
                queue.extend(session.resolve(await self._ask(policy, action)))
        await self._write(bytes(out))
        return not self._lost

    async def _ask(self, policy: SmtpPolicy, decision: Decision) -> Reply | None:
        try:
            match decision:
                case DecideConnect(info=info):
                    return await policy.connect(info)
                case DecideHelo(info=info, name=name):
                    return await policy.helo(info, name)
                case DecideMail(info=info, sender=sender, params=params):
                    return await policy.mail(info, sender, params)
                case DecideRcpt(info=info, rcpt=rcpt, params=rcpt_params):
                    return await policy.rcpt(info, rcpt, rcpt_params)
                case DecideAuth(info=info, mechanism=mech, authzid=authzid, username=user, password=pw):
                    return await policy.authenticate(info, mech, authzid, user, pw)
                case DecideData(info=info, envelope=envelope, message=message):
                    return await policy.data(info, envelope, message)
        except Exception:
            log.exception("SMTP policy failed on %s", type(decision).__name__)
        return TEMP_FAILURE

    async def _receive(self, session: SmtpSession) -> bytes | Reply:
        """The next input; b"" at end of input; a 421 reply when the session must end."""
        self._idle_expired = False
        while not self._inbox and not self._eof and not self._lost:
            if self._stopping and not session.in_transaction:
                return SHUTTING_DOWN
            if self._idle_expired:
                return TIMEOUT
            # A bare future and a timer: asyncio.wait_for would cost a task per read.
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            timer = loop.call_later(self.listener.idle_timeout, self._idle)
            try:
                await self._waiter
            finally:
                timer.cancel()
                self._waiter = None
        data = bytes(self._inbox)
        self._inbox.clear()
        if self._reading_paused and self._transport is not None and not self._lost:
            self._transport.resume_reading()
            self._reading_paused = False
        return data

    async def _start_tls(self, ready: bytes) -> bool:
        """Send the 220 and upgrade, with no await in between so that no byte of the client's
        handshake can reach our plaintext buffer; what was buffered before is injected input."""
        transport, context = self._transport, self.listener.ssl_context
        if transport is None or context is None or self._lost:
            return False
        self._inbox.clear()  # CVE-2011-0411
        transport.write(ready)
        try:
            upgraded = await asyncio.get_running_loop().start_tls(
                transport, self, context, server_side=True, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as error:
            log.info("STARTTLS handshake failed: %s", error)
            transport.abort()
            return False
        if upgraded is None:
            return False
        assert isinstance(upgraded, asyncio.Transport)
        self._transport = upgraded
        self._reading_paused = False
        if self._session is not None:
            cipher = upgraded.get_extra_info("cipher")
            server = self._peer_server()
            text = f"TLS {cipher[1]} {cipher[0]}" if cipher else "TLS"
            self.listener._log(self._session, "*", text + (f" server {server}" if server else ""))
        return True

    async def _write(self, data: bytes) -> None:
        if data and self._transport is not None and not self._lost:
            self._transport.write(data)
            await self._writable.wait()

    async def _abort(self, reply: Reply) -> None:
        """End the session from this side with a 421 (timeout, shutdown, internal error)."""
        data = reply.encode()
        self._log_sent(data)
        if self._transport is not None and not self._lost:
            self._transport.write(data)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._writable.wait(), 5.0)
            self._transport.close()

    def _log_sent(self, data: bytes) -> None:
        if self.listener.protocol_log is None or self._session is None:
            return
        for line in data.decode("utf-8", "replace").split("\r\n")[:-1]:
            self.listener._log(self._session, ">", line)
