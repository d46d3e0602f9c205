"""The SMTP listeners of a server, kept in step with its receive connectors in the directory.

One listener per distinct binding (address, port + the server's port_offset). Each new connection
picks its connector by the client's address (most specific RemoteIPRanges), so `courriel
receive-connector set` applies to the next connection; binding changes open and close listeners.
A listener's own settings follow its connectors at each directory change: the timeouts (the most
generous of the binding's connectors, so that no connector's clients are cut early) and implicit
TLS (RFC 8314 §3; a change of it reopens the listener).

With the organization's credentials, a binding where servers connect (a connector grants
ExchangeServers) and that no connector opens to AnonymousUsers or Partners — the Transport
service's "Default" and "Client Proxy", "Outbound Proxy Frontend" — presents the organization
certificate, asks TLS clients for theirs and recognizes servers of the organization by it (the
ExchangeServer mechanism, security/orgca.py). Other bindings keep the public certificate and
never ask: no Internet sender meets a request its software cannot answer, and submission
clients (587) see the certificate they were told to trust.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from pathlib import Path

from courriel.core.replies import Reply
from courriel.org.ipranges import Binding, parse_binding
from courriel.org.model import AuthMechanism, LoggingLevel, PermissionGroup, ReceiveConnector
from courriel.proto.smtp import SessionInfo, SessionSettings
from courriel.security.orgca import OrgCredentials
from courriel.services.smtp_server import SmtpListener
from courriel.transport.protocol_log import ProtocolLog
from courriel.transport.receive.connectors import offers_basic_auth, select_connector
from courriel.transport.receive.policy import ReceiveContext, ReceivePolicy

log = logging.getLogger(__name__)
NO_SERVICE = Reply(554, "5.7.1", "No SMTP service for your address")
PUBLIC_GROUPS = frozenset({PermissionGroup.ANONYMOUS_USERS, PermissionGroup.PARTNERS})
SERVER_GROUPS = frozenset({PermissionGroup.EXCHANGE_SERVERS, PermissionGroup.EXCHANGE_LEGACY_SERVERS})


class RefusingPolicy(ReceivePolicy):
    """For a client that no connector on this binding accepts (outside every RemoteIPRanges)."""

    async def connect(self, info: SessionInfo) -> Reply | None:
        return NO_SERVICE


def session_settings(connector: ReceiveConnector, fqdn: str, tls: bool) -> SessionSettings:
    mechs = connector.auth_mechanisms
    offers_tls = tls and AuthMechanism.TLS in mechs
    return SessionSettings(
        fqdn=connector.fqdn or fqdn,
        banner=connector.banner[4:] if connector.banner and connector.banner.startswith("220 ") else connector.banner,
        connector=connector.name,
        max_message_size=connector.max_message_size,
        max_recipients=connector.max_recipients_per_message,
        tls_available=offers_tls,
        require_tls=connector.require_tls and offers_tls,
        auth_mechanisms=("PLAIN", "LOGIN") if offers_basic_auth(connector) else (),
        auth_requires_tls=AuthMechanism.BASIC_AUTH_REQUIRE_TLS in mechs,
        auth_required=PermissionGroup.ANONYMOUS_USERS not in connector.permission_groups
        and PermissionGroup.PARTNERS not in connector.permission_groups,
        max_protocol_errors=connector.max_protocol_errors,
        max_logon_failures=connector.max_logon_failures,
    )


class SmtpListeners:
    def __init__(
        self,
        *,
        server: str,
        fqdn: str,
        port_offset: int,
        connectors: Callable[[], tuple[ReceiveConnector, ...]],
        context: ReceiveContext,
        tls: ssl.SSLContext | None,
        log_dir: Path,
        reuse_port: bool = False,
        credentials: OrgCredentials | None = None,
    ) -> None:
        self.server = server
        self.fqdn = fqdn
        self.port_offset = port_offset
        self.connectors = connectors
        self.context = context
        self.tls = tls
        self.protocol_log = ProtocolLog(log_dir, self._logging_enabled)
        self.listeners: dict[Binding, SmtpListener] = {}
        self.reuse_port = reuse_port  # several worker processes share each port
        self.credentials = credentials
        self.servers_tls = credentials.accept_servers(tls) if credentials is not None and tls is not None else None

    def _logging_enabled(self, connector: str) -> bool:
        return any(c.name == connector and c.protocol_logging_level is LoggingLevel.VERBOSE for c in self.connectors())

    def _bindings(self) -> dict[Binding, list[ReceiveConnector]]:
        """Each binding an enabled connector uses, with those connectors."""
        out: dict[Binding, list[ReceiveConnector]] = {}
        for c in self.connectors():
            if c.enabled:
                for b in {parse_binding(text) for text in c.bindings}:
                    out.setdefault(b, []).append(c)
        return out

    def _implicit_tls(self, connectors: list[ReceiveConnector]) -> bool:
        return self.tls is not None and any(c.implicit_tls for c in connectors)

    def _context(self, connectors: list[ReceiveConnector]) -> ssl.SSLContext | None:
        """The organization's listener context where servers connect and the public does not."""
        groups = {g for c in connectors for g in c.permission_groups}
        for_servers = bool(groups & SERVER_GROUPS) and not groups & PUBLIC_GROUPS
        return self.servers_tls if for_servers and self.servers_tls is not None else self.tls

    @staticmethod
    def _apply_timeouts(listener: SmtpListener, connectors: list[ReceiveConnector]) -> None:
        """ConnectionInactivityTimeout and ConnectionTimeout; read by the next wait or session."""
        listener.idle_timeout = max(c.connection_inactivity_timeout for c in connectors)
        listener.connection_timeout = max(c.connection_timeout for c in connectors)

    def _listener(self, binding: Binding, connectors: list[ReceiveConnector]) -> SmtpListener:
        chosen: dict[str, ReceiveConnector] = {}

        def settings_factory(peer: tuple[str, int]) -> SessionSettings:
            connector = select_connector(self.connectors(), binding, peer[0])
            if connector is None:
                return SessionSettings(fqdn=self.fqdn, connector="")
            chosen[connector.name] = connector
            return session_settings(connector, self.fqdn, self.tls is not None)

        def policy_factory(settings: SessionSettings) -> ReceivePolicy:
            connector = chosen.get(settings.connector)
            if connector is None:
                return RefusingPolicy(self.context, _nobody(self.server))
            return ReceivePolicy(self.context, connector)

        context = self._context(connectors)
        return SmtpListener(
            settings_factory,
            policy_factory,
            context,
            implicit_tls=self._implicit_tls(connectors),
            protocol_log=self.protocol_log.write,
            peer_server=self.credentials.peer_server
            if self.credentials is not None and context is self.servers_tls
            else None,
        )

    async def reconcile(self) -> list[Binding]:
        """Open listeners for new bindings, close those no connector uses; returns the bound ones."""
        wanted = self._bindings()
        for binding, listener in list(self.listeners.items()):
            connectors = wanted.get(binding)
            if (
                connectors is None
                or listener.implicit_tls != self._implicit_tls(connectors)
                or listener.ssl_context is not self._context(connectors)
            ):
                await self.listeners.pop(binding).stop()
                log.info("stopped listening on %s", binding)
            else:
                self._apply_timeouts(listener, connectors)
        for binding in sorted(set(wanted) - set(self.listeners), key=str):
            listener = self._listener(binding, wanted[binding])
            self._apply_timeouts(listener, wanted[binding])
            host, port = str(binding.address), binding.port
            try:
                await listener.start(host, port + self.port_offset, reuse_port=self.reuse_port)
            except OSError as exc:
                log.error("cannot listen on %s:%d: %s", host, port + self.port_offset, exc)
                continue
            self.listeners[binding] = listener
            log.info("listening on %s:%d", host, port + self.port_offset)
        return sorted(self.listeners, key=str)

    def bound(self) -> list[tuple[Binding, list[str]]]:
        """Each open binding (before the port offset) with the connectors that share it."""
        connectors = self.connectors()
        return [
            (binding, sorted(c.name for c in connectors if binding in {parse_binding(b) for b in c.bindings}))
            for binding in sorted(self.listeners, key=str)
        ]

    async def stop(self) -> None:
        for listener in self.listeners.values():
            await listener.stop()
        self.listeners.clear()
        self.protocol_log.close()


def _nobody(server: str) -> ReceiveConnector:
    from courriel.org.model import TransportRole

    return ReceiveConnector(server=server, name="", transport_role=TransportRole.FRONTEND, bindings=())
