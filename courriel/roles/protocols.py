"""IMAP4 and POP3 on a server: the back ends (Mailbox role) and the front ends (Client Access).

Exchange runs two services per protocol (research/exchange2013-facts.md §3): the Client Access
one that clients reach (IMAP4 143/993, POP3 110/995) and the back-end one on the Mailbox server
(1143/1993, 1110/1995, DESIGN.md §2). Both are disabled until `courriel imap-settings set
--enabled true` (or `pop-settings`); `reconcile()` runs on every directory change and starts or
stops the listeners to match, without a restart. Other settings (LoginType, timeouts, limits,
banner) are read per connection, so they need no reconcile. Ports come from core/ports.py with
the server's `port_offset`, on each of the config's listen addresses.

Every worker process of a server runs these services on the same ports (`reuse_port`, as the
SMTP listeners do): the kernel spreads connections over the workers. What must hold across
workers is shared through the databases or the data directory: IMAP IDLE hears other workers'
changes through a per-process change feed (services/imap/feed.py), the POP3 maildrop lock is a
file lock in `data_dir/pop3-locks` (services/pop3/maildrop.py).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Protocol

from courriel.clientaccess.imap import ImapFrontEnd
from courriel.clientaccess.locator import BackendLocator
from courriel.clientaccess.pop3 import Pop3FrontEnd
from courriel.config.schema import ServerConfig
from courriel.core.ports import Role, offset_port, services_for
from courriel.mailbox.store import MailboxDatabase
from courriel.org.cache import DirectoryCache
from courriel.org.snapshot import DirectorySnapshot
from courriel.roles.mailbox import MailboxRole
from courriel.security.slots import Slots
from courriel.security.throttle import LoginThrottle
from courriel.security.tls import client_context
from courriel.services.imap import ImapService
from courriel.services.logins import SessionCounter
from courriel.services.pop3.maildrop import MaildropLocks
from courriel.services.pop3.service import Pop3Service

log = logging.getLogger(__name__)

# service name (core/ports.py) → the protocol whose settings switch it on
PROTOCOL_OF = {"imap-proxy": "imap", "imap-backend": "imap", "pop3-proxy": "pop", "pop3-backend": "pop"}


class ListeningService(Protocol):
    counter: SessionCounter

    async def start_listener(self, host: str, port: int, *, implicit_tls: bool) -> int: ...

    def bound(self) -> list[tuple[str, int]]: ...

    async def stop(self, grace: float = ...) -> None: ...


class ProtocolServices:
    def __init__(
        self,
        config: ServerConfig,
        cache: DirectoryCache,
        mailbox: MailboxRole | None,
        tls: ssl.SSLContext,
        throttle: LoginThrottle,
        *,
        backend_tls: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        slots: Slots | None = None,
    ) -> None:
        self.config = config
        self.reuse_port = reuse_port
        self.slots = slots  # the server's, shared by its workers; None: each service counts alone
        self.cache = cache
        self.mailbox = mailbox
        self.tls = tls
        self.throttle = throttle
        # Front end → back end: encrypted; servers' certificates are self-signed (proxy.py).
        self.backend_tls = backend_tls or client_context(verify=False)
        self.locator = BackendLocator(lambda: self.cache.snapshot, config.name, config.listen)
        self._running: dict[str, ListeningService] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self.reconcile()

    def _wanted(self) -> set[str]:
        snapshot = self.cache.snapshot
        enabled = {"imap": snapshot.imap_settings.enabled, "pop": snapshot.pop_settings.enabled}
        wanted = set()
        for service in services_for(self.config.roles):
            protocol = PROTOCOL_OF.get(service.name)
            if protocol is None or not enabled[protocol]:
                continue
            if service.role is Role.MAILBOX and self.mailbox is None:
                continue
            wanted.add(service.name)
        return wanted

    def _database(self, name: str) -> MailboxDatabase | None:
        if self.mailbox is None:
            return None
        found = self.mailbox.databases.get(name)
        if found is None:  # directory names are case-insensitive
            found = next(
                (db for key, db in self.mailbox.databases.items() if key.casefold() == name.casefold()), None
            )
        return found

    def _build(self, name: str) -> ListeningService:
        def snapshot() -> DirectorySnapshot:
            return self.cache.snapshot

        if name == "pop3-backend":
            return Pop3Service(
                snapshot=snapshot,
                databases=self._database,
                throttle=self.throttle,
                tls=self.tls,
                locks=MaildropLocks(self.config.data_dir / "pop3-locks"),
                reuse_port=self.reuse_port,
            )
        if name == "imap-backend":
            return ImapService(
                databases=self._database,
                directory=snapshot,
                settings=lambda: self.cache.snapshot.imap_settings,
                tls=self.tls,
                throttle=self.throttle,
                server_name=self.config.name,
                fqdn=self.config.fqdn,
                reuse_port=self.reuse_port,
            )
        front = {"pop3-proxy": Pop3FrontEnd, "imap-proxy": ImapFrontEnd}[name]
        service = front(
            snapshot=snapshot,
            throttle=self.throttle,
            tls=self.tls,
            locator=self.locator,
            backend_tls=self.backend_tls,
        )
        service.listeners.reuse_port = self.reuse_port  # the front ends' sockets, likewise
        return service

    async def reconcile(self) -> None:
        """Start the services the settings enable, stop the ones they no longer do."""
        async with self._lock:
            wanted = self._wanted()
            for name in sorted(set(self._running) - wanted):
                await self._running.pop(name).stop()
                log.info("%s stopped", name)
            for name in sorted(wanted - set(self._running)):
                service = self._build(name)
                if self.slots is not None:  # MaxConnections & co. hold across the workers
                    service.counter.share(self.slots, name)
                self._running[name] = service
                for port in services_for(self.config.roles):
                    if port.name != name:
                        continue
                    for host in self.config.listen:
                        real = offset_port(port.port, self.config.port_offset)
                        try:
                            await service.start_listener(host, real, implicit_tls=port.tls == "implicit")
                        except OSError as error:
                            log.error("%s cannot listen on %s:%d: %s", name, host, real, error)
                            continue
                        log.info("%s listening on %s:%d", name, host, real)

    def bound(self) -> list[tuple[str, str, int]]:
        """(service, host, port) of every open listener, ports with the offset applied."""
        return sorted(
            (name, host, port) for name, service in self._running.items() for host, port in service.bound()
        )

    async def stop(self) -> None:
        async with self._lock:
            for service in self._running.values():
                await service.stop()
            self._running.clear()
