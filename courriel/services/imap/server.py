"""The IMAP4 back-end service of a Mailbox server: 1143 (STARTTLS) and 1993 (TLS), DESIGN.md §2.

Each accepted connection runs an `ImapSession` (courriel.proto.imap.session) over the mailbox
databases mounted here, with logins checked against the directory (login.py). Set-ImapSettings
is read for every new connection, so `courriel imap-settings set` applies to the next one
without a restart: Enabled (a disabled service greets with BYE), LoginType (SecureLogin: no
credentials before TLS on the STARTTLS port; RFC 9051 §6.2.3 LOGINDISABLED), the pre- and
post-authentication timeouts, MaxConnections, MaxConnectionsPerUser and MaxCommandSize. There is
no per-address limit here: the clients of a back end are the Client Access front ends, which
apply MaxConnectionFromSingleIP to the real client addresses.

Every worker of the server runs this service on the same ports (`reuse_port`: the kernel
spreads the connections). Changes made in this process reach IDLE at once (the store's change
notifications); those made by another worker are found by one poll per database and folder for
the whole process (feed.py), every `poll_interval` seconds, not by each session.

A session whose mailbox moved to another database, or whose database left this server, ends
with `BYE [UNAVAILABLE]` (courriel.services.placement): checked when a command arrives,
and every `poll_interval` seconds for all sessions, so that one in IDLE hears of it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
from collections.abc import Callable
from typing import Final

from courriel.mailbox.store import MailboxDatabase
from courriel.org.model import ProtocolSettings
from courriel.org.snapshot import DirectorySnapshot
from courriel.proto.imap.session import ImapSession, SessionConfig
from courriel.security.throttle import LoginThrottle
from courriel.services.imap.account import RecentRegistry, StoreAccount
from courriel.services.imap.connection import ImapConnection
from courriel.services.imap.feed import ProcessFeeds
from courriel.services.imap.login import DirectoryAuthenticator
from courriel.services.listener import Listeners
from courriel.services.logins import DirectoryLogin, SessionCounter, plaintext_allowed
from courriel.services.placement import Placements

log = logging.getLogger(__name__)

DEFAULT_BANNER: Final = "Courriel IMAP4 service is ready."
DEFAULT_APPEND_LIMIT: Final = 50 * 1024 * 1024


class ImapService:
    """IMAP4 over the mailbox databases of this server."""

    def __init__(
        self,
        *,
        databases: Callable[[str], MailboxDatabase | None],
        directory: Callable[[], DirectorySnapshot],
        settings: Callable[[], ProtocolSettings],
        tls: ssl.SSLContext,
        throttle: LoginThrottle,
        server_name: str,
        fqdn: str,
        append_limit: int = DEFAULT_APPEND_LIMIT,
        poll_interval: float = 1.0,
        idle_keepalive: float = 120.0,
        reuse_port: bool = False,
    ) -> None:
        self.server_name = server_name
        self.fqdn = fqdn
        self._settings = settings
        self._append_limit = append_limit
        self._idle_keepalive = idle_keepalive
        self._poll_interval = poll_interval
        self.placements = Placements(directory, databases)
        self._watcher: asyncio.Task[None] | None = None
        self.recent = RecentRegistry()
        self.counter = SessionCounter()
        self.feeds = ProcessFeeds(poll_interval)
        self.authenticator = DirectoryAuthenticator(
            DirectoryLogin(directory, throttle, "imap"),
            databases,
            settings,
            self.counter,
            self.recent,
            self.feeds,
        )
        self.listeners: Listeners[ImapConnection] = Listeners(
            lambda implicit_tls: ImapConnection(self, implicit_tls), tls, reuse_port=reuse_port
        )
        self._configs: dict[bool, tuple[ProtocolSettings, SessionConfig]] = {}

    async def start_listener(self, host: str, port: int, *, implicit_tls: bool) -> int:
        """Listen on host:port, with TLS from the first byte (1993) or STARTTLS (1143); returns
        the bound port (useful with port 0)."""
        bound = await self.listeners.listen(host, port, implicit_tls=implicit_tls)
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_placements())
        log.info(
            "IMAP4 on %s listening on %s:%d (%s)",
            self.server_name,
            host,
            bound,
            "TLS" if implicit_tls else "STARTTLS",
        )
        return bound

    def bound(self) -> list[tuple[str, int]]:
        return self.listeners.bound()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop listening; sessions waiting for input get BYE at once, busy ones `grace` seconds."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self.listeners.stop(grace)
        await self.feeds.close()

    # ---- mailbox moves ----------------------------------------------------------------------------

    def check_placement(self, session: ImapSession) -> None:
        """Tell the session if its mailbox moved since login (it says BYE [UNAVAILABLE])."""
        account = session.account
        if session.moved or not isinstance(account, StoreAccount) or account.placement is None:
            return
        if self.placements.moved(account.placement):
            log.info("IMAP session of %s: the mailbox moved, ending the session", account.user)
            session.relocated()

    async def _watch_placements(self) -> None:
        """Every `poll_interval`, the check for every session (those in IDLE send no command)."""
        while True:
            await asyncio.sleep(self._poll_interval)
            for connection in list(self.listeners.connections):
                session = connection.session
                if session is not None:
                    try:
                        self.check_placement(session)
                    except Exception:
                        log.exception("IMAP placement check failed for %s", connection.peer)

    # ---- connections ----------------------------------------------------------------------------

    def session_config(self, settings: ProtocolSettings, implicit_tls: bool) -> SessionConfig:
        """Shared by every connection until Set-ImapSettings changes (one object, not 10,000)."""
        cached = self._configs.get(implicit_tls)
        if cached is not None and cached[0] is settings:
            return cached[1]
        config = SessionConfig(
            greeting=settings.banner or DEFAULT_BANNER,
            tls_active=implicit_tls,
            tls_available=True,
            plaintext_auth=plaintext_allowed(settings),
            pre_auth_timeout=settings.pre_authenticated_connection_timeout,
            auth_timeout=settings.authenticated_connection_timeout,
            idle_keepalive=self._idle_keepalive,
            poll_interval=math.inf,  # the process's change feed polls for every session
            max_command=settings.max_command_size,
            append_limit=self._append_limit,
        )
        self._configs[implicit_tls] = (settings, config)
        return config

    def accept(self, connection: ImapConnection, implicit_tls: bool) -> ImapSession | None:
        """A session for a new connection, or None after a BYE (disabled, full, stopping)."""
        settings = self._settings()
        refusal = None
        if self.listeners.stopping:
            refusal = b"* BYE Server shutting down\r\n"
        elif not settings.enabled:
            refusal = b"* BYE IMAP4 is not enabled on this server\r\n"
        elif not self.counter.admit(connection.peer, settings, per_ip=False):
            refusal = b"* BYE Too many connections, try again later\r\n"
        if refusal is not None:
            connection.refuse(refusal)
            return None
        self.listeners.connections.add(connection)
        config = self.session_config(settings, implicit_tls)
        return ImapSession(config, connection, self.authenticator, connection.peer)

    async def run(self, connection: ImapConnection, session: ImapSession) -> None:
        try:
            await session.run()
        finally:
            self.listeners.connections.discard(connection)
            self.counter.leave(connection.peer)
