"""The SMTP listeners of a server, kept in step with its receive connectors in the directory.

One listener per distinct binding (address, port + the server's port_offset). Each new connection
picks its connector by the client's address (most specific RemoteIPRanges), so `courriel
receive-connector set` applies to the next connection; binding changes open and close listeners.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from pathlib import Path

from courriel.core.replies import Reply
from courriel.org.model import AuthMechanism, LoggingLevel, PermissionGroup, ReceiveConnector
from courriel.proto.smtp import SessionInfo, SessionSettings
from courriel.services.smtp_server import SmtpListener
from courriel.transport.protocol_log import ProtocolLog
from courriel.org.ipranges import Binding, parse_binding
from courriel.transport.receive.connectors import offers_basic_auth, select_connector
from courriel.transport.receive.policy import ReceiveContext, ReceivePolicy

log = logging.getLogger(__name__)
NO_SERVICE = Reply(554, "5.7.1", "No SMTP service for your address")


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
    ) -> None:
        self.server = server
        self.fqdn = fqdn
        self.port_offset = port_offset
        self.connectors = connectors
        self.context = context
        self.tls = tls
        self.protocol_log = ProtocolLog(log_dir, self._logging_enabled)
        self.listeners: dict[Binding, SmtpListener] = {}

    def _logging_enabled(self, connector: str) -> bool:
        return any(c.name == connector and c.protocol_logging_level is LoggingLevel.VERBOSE for c in self.connectors())

    def _bindings(self) -> set[Binding]:
        return {parse_binding(b) for c in self.connectors() if c.enabled for b in c.bindings}

    def _listener(self, binding: Binding) -> SmtpListener:
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

        return SmtpListener(settings_factory, policy_factory, self.tls, protocol_log=self.protocol_log.write)

    async def reconcile(self) -> list[Binding]:
        """Open listeners for new bindings, close those no connector uses; returns the bound ones."""
        wanted = self._bindings()
        for binding in list(self.listeners):
            if binding not in wanted:
                await self.listeners.pop(binding).stop()
                log.info("stopped listening on %s", binding)
        for binding in sorted(wanted - set(self.listeners), key=str):
            listener = self._listener(binding)
            host, port = str(binding.address), binding.port
            try:
                await listener.start(host, port + self.port_offset)
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
