"""What the IMAP4 and POP3 front ends share: log in here, then on the back end, then relay.

A Client Access front end is stateless (DESIGN.md §2, §3): it checks the client's credentials
against the directory (services/logins.py: the same rules as the back end, so a refusal
costs no back-end connection), finds the Mailbox server holding the mailbox (locator.py), opens
TLS to its back-end port, logs in there with the same credentials, and from then on copies
bytes both ways until either side closes (`relay`). The back end does the protocol work and
enforces the authenticated idle timeout; the relay applies the same timeout as a backstop.

The hop to the back end is TLS without certificate checks by default (as Exchange between its
own servers, whose certificates are self-signed): encrypted, not authenticated; `backend_tls`
may be a verifying context where an organization runs its own CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from courriel.clientaccess.locator import BackendLocator, Endpoint
from courriel.org.model import ProtocolSettings
from courriel.org.snapshot import DirectorySnapshot
from courriel.security.throttle import LoginThrottle
from courriel.services.logins import DirectoryLogin, Protocol, SessionCounter
from courriel.services.stream import Connection, Shutdown, StreamListeners

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
LOGIN_TIMEOUT = 30.0  # the whole back-end login exchange
MAX_LINE = 64 * 1024  # a back-end line before login (greeting, capabilities)
RELAY_CHUNK = 64 * 1024
CLOSE_GRACE = 2.0  # after the client closes, how long the back end's last words may take


class BackendUnavailable(Exception):
    """No usable back end: unreachable, TLS failure, timeout, or an answer we cannot read."""


class Denied(StrEnum):
    CREDENTIALS = "credentials"  # counts as a failed login
    IN_USE = "in-use"  # POP3: the maildrop is locked by another session
    UNAVAILABLE = "unavailable"  # try again later
    TOO_MANY = "too-many"  # MaxConnectionsPerUser reached


class BackendLink:
    """A TLS connection to a back end, read line by line until the login is done."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, endpoint: Endpoint, tls: ssl.SSLContext) -> BackendLink:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    endpoint.host,
                    endpoint.port,
                    ssl=tls,
                    limit=MAX_LINE,
                    local_addr=(endpoint.source, 0) if endpoint.source else None,
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, ssl.SSLError, TimeoutError) as error:
            raise BackendUnavailable(
                f"{endpoint.server} at {endpoint.host}:{endpoint.port}: {error}"
            ) from None
        return cls(reader, writer)

    async def read_line(self) -> bytes:
        """One line with its CRLF; BackendUnavailable at end of input or when too long."""
        try:
            line = await self.reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ssl.SSLError) as error:
            raise BackendUnavailable(f"back end stopped answering: {error!r}") from None
        return line

    async def read_exactly(self, size: int) -> bytes:
        try:
            return await self.reader.readexactly(size)
        except (asyncio.IncompleteReadError, OSError, ssl.SSLError) as error:
            raise BackendUnavailable(f"back end stopped answering: {error!r}") from None

    async def send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (OSError, ssl.SSLError) as error:
            raise BackendUnavailable(f"back end went away: {error!r}") from None

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True)
class Proxied:
    """Logged in on the back end: `reply` is its answer, for the client; `user` is the key the
    session is counted under (release it with `FrontEnd.release`)."""

    link: BackendLink
    reply: bytes
    user: str


BackendLogin = Callable[[BackendLink, str, str], Awaitable[bytes | Denied]]
"""Logs in on a back end with (username, password): its success answer, or why not."""


class FrontEnd:
    """One Client Access protocol service: listeners, admission, logins, and the path to the
    back ends. A protocol's front end names itself and its back end, and `converse`s."""

    name: ClassVar[str]  # of the listeners, for the log
    protocol: ClassVar[Protocol]
    backend_service: ClassVar[str]  # core/ports.py
    too_many_connections: ClassVar[bytes]  # the protocol's goodbye at MaxConnections

    def __init__(
        self,
        *,
        snapshot: Callable[[], DirectorySnapshot],
        throttle: LoginThrottle,
        tls: ssl.SSLContext | None,
        locator: BackendLocator,
        backend_tls: ssl.SSLContext,
    ) -> None:
        self.login = DirectoryLogin(snapshot, throttle, self.protocol)
        self.counter = SessionCounter()
        self.locator = locator
        self.backend_tls = backend_tls
        self.listeners = StreamListeners(self.name, self._admit, tls)

    async def _admit(self, connection: Connection) -> None:
        """MaxConnections and MaxConnectionFromSingleIP, under the settings of the moment."""
        settings = self.login.settings()
        ip = connection.peer[0]
        if not self.counter.admit(ip, settings):
            await connection.write(self.too_many_connections)
            return
        try:
            await self.converse(connection, settings)
        finally:
            self.counter.leave(ip)

    async def converse(self, connection: Connection, settings: ProtocolSettings) -> None:
        """The protocol's session with an admitted client, up to the relay."""
        raise NotImplementedError

    async def start_listener(self, host: str, port: int, *, implicit_tls: bool) -> int:
        return await self.listeners.listen(host, port, implicit_tls=implicit_tls)

    def bound(self) -> list[tuple[str, int]]:
        return self.listeners.bound()

    async def stop(self, grace: float = 10.0) -> None:
        await self.listeners.stop(grace)

    async def proxy_login(
        self, ip: str, username: str, password: str, backend_login: BackendLogin
    ) -> Proxied | Denied:
        recipient = await self.login.verify(ip, username, password)
        if recipient is None:
            return Denied.CREDENTIALS
        assert recipient.guid is not None  # DirectoryLogin only accepts mailboxes with one
        if not self.counter.enter_user(recipient.guid, self.login.settings()):
            return Denied.TOO_MANY
        endpoint = self.locator.locate(recipient, self.backend_service)
        outcome: bytes | Denied = Denied.UNAVAILABLE
        link: BackendLink | None = None
        try:
            if endpoint is None:
                log.warning(
                    "no mounted database for %s: %s is unavailable",
                    recipient.primary_address,
                    self.backend_service,
                )
            else:
                link = await BackendLink.open(endpoint, self.backend_tls)
                # The back end resolves the primary address exactly as we did the name typed.
                async with asyncio.timeout(LOGIN_TIMEOUT):
                    outcome = await backend_login(link, recipient.primary_address, password)
        except (BackendUnavailable, TimeoutError) as error:
            log.warning(
                "%s for %s: %s", self.backend_service, recipient.primary_address, error or "login timed out"
            )
            outcome = Denied.UNAVAILABLE
        if isinstance(outcome, Denied) or link is None:
            if link is not None:
                link.close()
            self.counter.leave_user(recipient.guid)
            return outcome if isinstance(outcome, Denied) else Denied.UNAVAILABLE
        log.info("%s proxy: %s from %s to %s", self.login.protocol, recipient.primary_address, ip, endpoint)
        return Proxied(link, outcome, recipient.guid)

    def release(self, proxied: Proxied) -> None:
        proxied.link.close()
        self.counter.leave_user(proxied.user)


async def relay(client: Connection, link: BackendLink, leftover: bytes, idle: float) -> None:
    """Copy bytes both ways until one side closes, or nothing moves for `idle` seconds.

    `leftover` is what the client pipelined behind its login; it goes first. When the service
    stops, the session is cut (the back end's own stop says goodbye in protocol, where it can
    do so between responses).
    """
    loop = asyncio.get_running_loop()
    last = loop.time()

    async def upstream() -> None:
        nonlocal last
        if leftover:
            await link.send(leftover)
        while True:
            data = await client.receive(max(0.1, idle - (loop.time() - last)))
            if data is None:
                if loop.time() - last >= idle:
                    return  # quiet both ways
                continue  # the back end was busy meanwhile
            if not data:
                return
            last = loop.time()
            await link.send(data)

    async def downstream() -> None:
        nonlocal last
        while True:
            data = await link.reader.read(RELAY_CHUNK)
            if not data:
                return
            last = loop.time()
            await client.write(data)

    up = asyncio.create_task(upstream())
    down = asyncio.create_task(downstream())
    try:
        done, _ = await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        stopping = up in done and isinstance(up.exception(), Shutdown)
        if up in done and not down.done() and not stopping:
            # The client is done sending. If it only half-closed, the back end's last answer (to
            # QUIT or LOGOUT) may still be on its way; once the client is gone, nothing is.
            gone = asyncio.create_task(client.wait_lost())
            await asyncio.wait((down, gone), timeout=CLOSE_GRACE, return_when=asyncio.FIRST_COMPLETED)
            gone.cancel()
    finally:
        for task in (up, down):
            task.cancel()
        for task in (up, down):
            with contextlib.suppress(
                asyncio.CancelledError, Shutdown, BackendUnavailable, OSError, ssl.SSLError
            ):
                await task
