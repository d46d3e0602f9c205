"""Which receive connector owns a connection, and what it permits (research §2).

A listener serves one binding (local address and port); several connectors may share it with
different RemoteIPRanges, and the most specific range that contains the client wins (a /32 beats a
/24 beats everything). Permission groups grant extended rights to the session's identity.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Flag, auto

from courriel.org.ipranges import Binding, parse_binding, parse_ip_range
from courriel.org.model import AuthMechanism, PermissionGroup, ReceiveConnector


class Right(Flag):
    SUBMIT = auto()
    ACCEPT_ANY_RECIPIENT = auto()  # relay
    ACCEPT_ANY_SENDER = auto()
    ACCEPT_AUTHORITATIVE_DOMAIN_SENDER = auto()
    ACCEPT_ROUTING_HEADERS = auto()
    BYPASS_ANTI_SPAM = auto()
    BYPASS_MESSAGE_SIZE_LIMIT = auto()
    NONE = 0


_GROUP_RIGHTS = {
    PermissionGroup.ANONYMOUS_USERS: Right.SUBMIT | Right.ACCEPT_ANY_SENDER | Right.ACCEPT_AUTHORITATIVE_DOMAIN_SENDER | Right.ACCEPT_ROUTING_HEADERS,
    PermissionGroup.EXCHANGE_USERS: Right.SUBMIT | Right.ACCEPT_ANY_RECIPIENT | Right.ACCEPT_ROUTING_HEADERS | Right.BYPASS_ANTI_SPAM,
    PermissionGroup.PARTNERS: Right.SUBMIT | Right.ACCEPT_ROUTING_HEADERS,
}
_SERVER_RIGHTS = ~Right.NONE  # ExchangeServers and ExchangeLegacyServers: everything


def rights(connector: ReceiveConnector, *, authenticated_user: bool, authenticated_server: bool) -> Right:
    """The rights of a session: anonymous, an authenticated user, or an authenticated server."""
    granted = Right.NONE
    groups = set(connector.permission_groups)
    if authenticated_server and groups & {PermissionGroup.EXCHANGE_SERVERS, PermissionGroup.EXCHANGE_LEGACY_SERVERS}:
        return _SERVER_RIGHTS
    if authenticated_user:
        if PermissionGroup.EXCHANGE_USERS in groups:
            granted |= _GROUP_RIGHTS[PermissionGroup.EXCHANGE_USERS]
    elif PermissionGroup.ANONYMOUS_USERS in groups:
        granted |= _GROUP_RIGHTS[PermissionGroup.ANONYMOUS_USERS]
    return granted


def select_connector(connectors: Iterable[ReceiveConnector], binding: Binding, client_ip: str) -> ReceiveConnector | None:
    """The enabled connector on this binding whose remote range most specifically contains the client."""
    best: tuple[int, ReceiveConnector] | None = None
    for conn in connectors:
        if not conn.enabled or binding not in {parse_binding(b) for b in conn.bindings}:
            continue
        sizes = [r.size for r in map(parse_ip_range, conn.remote_ip_ranges) if client_ip in r]
        if sizes and (best is None or min(sizes) < best[0]):
            best = (min(sizes), conn)
    return best[1] if best else None


def offers_basic_auth(connector: ReceiveConnector) -> bool:
    """AUTH PLAIN/LOGIN is offered when BasicAuth is on and someone can use it (ExchangeUsers)."""
    return AuthMechanism.BASIC_AUTH in connector.auth_mechanisms and PermissionGroup.EXCHANGE_USERS in connector.permission_groups
