"""HTTP on a server: the Client Access proxy (443, 80) and the Mailbox back end (444, 81).

Unlike IMAP4 and POP3, the web services are on by default (the seed lists them without a switch),
so they start with the server and need no reconcile. Ports come from core/ports.py with the
server's `port_offset`, on each of the config's listen addresses.

The hop between the two is where the organization's certificates matter: the proxy connects to
444 presenting this server's organization certificate (`OrgCredentials.client_context`) and
checks the back end's; the back end's 444 listener asks for that certificate
(`accept_servers`) and believes the proxy's identity headers only from a server it names
(`peer_server`). Without organization credentials the proxy still encrypts the hop, but no back
end believes it: only published calendars get through. The proxy's connections leave from this
server's own listen address (clientaccess/http.py).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping

from starlette.types import ASGIApp

from courriel.clientaccess.http import HttpProxy
from courriel.clientaccess.locator import BackendLocator
from courriel.config.schema import ServerConfig
from courriel.core.ports import SERVICES, offset_port, services_for
from courriel.org.cache import DirectoryCache
from courriel.org.snapshot import DirectorySnapshot
from courriel.security.orgca import OrgCredentials
from courriel.security.throttle import LoginThrottle
from courriel.security.tls import client_context
from courriel.services.http.app import backend_app
from courriel.services.http.listener import HttpListeners

log = logging.getLogger(__name__)

PROXY = "http-proxy"
BACKEND = "http-backend"


def https_port() -> int:
    """The proxy's TLS port in the ports table (443), where port 80 redirects to."""
    return next(svc.port for svc in SERVICES if svc.name == PROXY and svc.tls == "implicit")


class HttpServices:
    def __init__(
        self,
        config: ServerConfig,
        cache: DirectoryCache,
        tls: ssl.SSLContext,
        throttle: LoginThrottle,
        *,
        org: OrgCredentials | None = None,
        reuse_port: bool = False,
        applications: Mapping[str, ASGIApp] | None = None,
    ) -> None:
        self.config = config
        self.tls = tls
        self.org = org
        self._listeners: dict[str, HttpListeners] = {}
        self.proxy: HttpProxy | None = None
        names = {svc.name for svc in services_for(config.roles)}

        def snapshot() -> DirectorySnapshot:
            return cache.snapshot

        if PROXY in names:
            self.proxy = HttpProxy(
                server=config.name,
                snapshot=snapshot,
                throttle=throttle,
                locator=BackendLocator(snapshot, config.name, config.listen),
                backend_tls=org.client_context() if org is not None else client_context(verify=False),
                https_port=offset_port(https_port(), config.port_offset),
                public_host=config.fqdn,
                listen=config.listen,
            )
            self._listeners[PROXY] = HttpListeners(PROXY, self.proxy, reuse_port=reuse_port)
        if BACKEND in names:
            self._listeners[BACKEND] = HttpListeners(
                BACKEND,
                backend_app(config.name, applications),
                peer_server=org.peer_server if org is not None else None,
                reuse_port=reuse_port,
            )

    def _context(self, service: str, implicit_tls: bool) -> ssl.SSLContext | None:
        if not implicit_tls:
            return None
        if service == BACKEND and self.org is not None:
            return self.org.accept_servers(self.tls)
        return self.tls

    async def start(self) -> None:
        for svc in services_for(self.config.roles):
            listeners = self._listeners.get(svc.name)
            if listeners is None:
                continue
            context = self._context(svc.name, svc.tls == "implicit")
            port = offset_port(svc.port, self.config.port_offset)
            for host in self.config.listen:
                try:
                    await listeners.listen(host, port, context)
                except OSError as error:
                    log.error("%s cannot listen on %s:%d: %s", svc.name, host, port, error)
                    continue
                log.info("%s listening on %s:%d", svc.name, host, port)

    def bound(self) -> list[tuple[str, str, int]]:
        """(service, host, port) of every open listener, ports with the offset applied."""
        return sorted(
            (name, host, port)
            for name, listeners in self._listeners.items()
            for host, port in listeners.bound()
        )

    async def stop(self, grace: float = 10.0) -> None:
        for name, listeners in self._listeners.items():
            await listeners.stop(grace)
            if name == PROXY and self.proxy is not None:
                # Before the back end stops: our idle connections to it would hold its shutdown.
                await self.proxy.aclose()
