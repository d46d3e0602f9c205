"""The SMTP listener: runs `courriel.proto.smtp.SmtpSession` on sockets, one task per connection.

This layer owns only I/O: it feeds the engine what the socket delivers, writes the replies of a
batch in one write, asks the connector's `SmtpPolicy` each `Decide*` question, upgrades to TLS
on `StartTLS` (RFC 3207) or from the first byte (implicit TLS, RFC 8314), and enforces the idle
and connection timeouts (421 4.4.2, RFC 5321 §4.5.3.2 asks for generous ones; Exchange uses
5 and 10 minutes). Sockets, buffers and the TLS upgrade are services/stream.py's (plaintext
read before a STARTTLS upgrade is dropped there, CVE-2011-0411). Input is read only between
batches, so while the engine waits for a decision the buffer fills and reading pauses: that is
how a slow policy pushes back on a pipelining client. A stopping listener lets a transaction
under way finish within the grace period.

A listener given `peer_server` (a binding where organization servers connect) reads the
client certificate after the handshake, implicit or STARTTLS, and tells the engine which server
it proved (`SessionInfo.authenticated_server`); the TLS context decides whether one is asked for.

A policy that raises gets the peer a `451 4.3.0` and a traceback in the log; the session goes
on. Nothing a peer does can end the listener.
"""

from __future__ import annotations

import asyncio
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
from courriel.services.stream import Connection, Shutdown, StreamListeners

log = logging.getLogger(__name__)

ProtocolLog = Callable[[str, str, str, str], None]
"""(connector, session id, direction, line): "<" received, ">" sent, "+" connected, "-" gone, "*" event."""
PeerServer = Callable[[ssl.SSLObject | None], str | None]
"""The organization server a verified client certificate names, else None (security/orgca.py)."""

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
        self.implicit_tls = implicit_tls
        self.protocol_log = protocol_log
        self.peer_server = peer_server
        self.idle_timeout = idle_timeout
        self.connection_timeout = connection_timeout
        # No write timeout of its own: the connection timeout bounds a peer that does not read.
        self.listeners = StreamListeners(
            "SMTP",
            self._serve,
            ssl_context,
            handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
            write_timeout=None,
        )

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self.listeners.tls

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        self.listeners.reuse_port = reuse_port
        await self.listeners.listen(host, port, implicit_tls=self.implicit_tls)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (empty before `start` and after `stop`)."""
        return self.listeners.sockets

    @property
    def port(self) -> int:
        """The bound port (useful after `start(host, 0)`)."""
        bound = self.listeners.bound()
        if not bound:
            raise RuntimeError("listener not started")
        return bound[0][1]

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting; idle sessions get 421 now, busy ones up to `grace` seconds to finish."""
        await self.listeners.stop(grace)

    async def _serve(self, connection: Connection) -> None:
        await _Conversation(self, connection).run()

    def _log(self, session: SmtpSession, direction: str, text: str) -> None:
        if self.protocol_log is None:
            return
        try:
            self.protocol_log(session.settings.connector, session.session_id, direction, text)
        except Exception:
            log.exception("protocol log failed")


class _Conversation:
    """One SMTP session on a connection: the engine, the policy, the protocol log."""

    def __init__(self, listener: SmtpListener, connection: Connection) -> None:
        self.listener = listener
        self._conn = connection
        self._session: SmtpSession | None = None

    def _peer_server(self) -> str | None:
        """The organization server this TLS connection's client certificate proved, if any."""
        finder = self.listener.peer_server
        if finder is None:
            return None
        try:
            return finder(self._conn.extra_info("ssl_object"))
        except Exception:
            log.exception("cannot read the client certificate")
            return None

    async def run(self) -> None:
        listener, peer = self.listener, self._conn.peer
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
                started = await self._start_tls(session, bytes(out))
                if started is None:
                    return False
                out.clear()
                queue.extend(started)
            elif isinstance(action, Close):
                await self._conn.write(bytes(out))
                return False
            else:
                queue.extend(session.resolve(await self._ask(policy, action)))
        await self._conn.write(bytes(out))
        return not self._conn.closed

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
        # A stopping service ends the session between transactions, after the input it has.
        stoppable = not (session.in_transaction or self._conn.has_input)
        try:
            data = await self._conn.receive(self.listener.idle_timeout, stoppable=stoppable)
        except Shutdown:
            return SHUTTING_DOWN
        return TIMEOUT if data is None else data

    async def _start_tls(self, session: SmtpSession, ready: bytes) -> list[Action] | None:
        """Send the 220 and upgrade (stream.py drops what the client sent before it); the
        engine's actions once TLS is up, None when the handshake failed."""
        if not await self._conn.start_tls(ready):
            return None
        cipher = self._conn.extra_info("cipher")
        server = self._peer_server()  # read once: the certificate's signature check has a cost
        text = f"TLS {cipher[1]} {cipher[0]}" if cipher else "TLS"
        self.listener._log(session, "*", text + (f" server {server}" if server else ""))
        return session.tls_started(server)

    async def _abort(self, reply: Reply) -> None:
        """End the session from this side with a 421 (timeout, shutdown, internal error)."""
        data = reply.encode()
        self._log_sent(data)
        await self._conn.close(data)

    def _log_sent(self, data: bytes) -> None:
        if self.listener.protocol_log is None or self._session is None:
            return
        for line in data.decode("utf-8", "replace").split("\r\n")[:-1]:
            self.listener._log(self._session, ">", line)
