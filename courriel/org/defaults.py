"""The receive connectors that setup creates for a server's roles, and the New-ReceiveConnector usage presets.

Exactly the seed's table (exchange2013-facts.md §1 and §8): three Front End Transport connectors on
Client Access (25, 587, 717), two Transport connectors on Mailbox ("Default" on 25, or 2525 when
Client Access shares the computer, and "Client Proxy" on 465), one on an Edge. Ports come from
`core/ports.py`; bindings keep the seed's real port and the server adds its `port_offset` when it
binds, so `courriel ports` can show both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from courriel.core import ports
from courriel.core.errors import PermanentError
from courriel.core.ports import Role, services_for
from courriel.org.ipranges import binding_for
from courriel.org.model import (
    MB,
    AuthMechanism,
    LoggingLevel,
    PermissionGroup,
    ReceiveConnector,
    TransportRole,
)

A = AuthMechanism
P = PermissionGroup

# Which role's service runs a connector of each transport role.
SERVICE_ROLE = {
    TransportRole.FRONTEND: Role.CLIENT_ACCESS,
    TransportRole.HUB: Role.MAILBOX,
    TransportRole.EDGE: Role.EDGE,
}

ALL_IPV4 = "0.0.0.0-255.255.255.255"
WILDCARD_LISTEN = ("0.0.0.0",)

# Connector template → its parameters in the seed's table (the name and port come from core/ports).
_SEED: dict[str, dict[str, Any]] = {
    ports.DEFAULT_FRONTEND: {
        "transport_role": TransportRole.FRONTEND,
        "auth_mechanisms": (A.TLS, A.BASIC_AUTH, A.BASIC_AUTH_REQUIRE_TLS, A.EXCHANGE_SERVER, A.INTEGRATED),
        "permission_groups": (P.ANONYMOUS_USERS, P.EXCHANGE_LEGACY_SERVERS, P.EXCHANGE_SERVERS),
        "protocol_logging_level": LoggingLevel.VERBOSE,
        "max_message_size": 36 * MB,
        "max_recipients_per_message": 200,
    },
    ports.CLIENT_FRONTEND: {
        "transport_role": TransportRole.FRONTEND,
        "auth_mechanisms": (A.TLS, A.BASIC_AUTH, A.BASIC_AUTH_REQUIRE_TLS, A.INTEGRATED),
        "permission_groups": (P.EXCHANGE_USERS,),
        "max_message_size": 35 * MB,
        "max_recipients_per_message": 200,
    },
    ports.OUTBOUND_PROXY_FRONTEND: {
        "transport_role": TransportRole.FRONTEND,
        "auth_mechanisms": (A.TLS, A.BASIC_AUTH, A.BASIC_AUTH_REQUIRE_TLS, A.EXCHANGE_SERVER, A.INTEGRATED),
        "permission_groups": (P.EXCHANGE_SERVERS,),
        "max_message_size": 36 * MB,
        "max_recipients_per_message": 200,
    },
    ports.DEFAULT_TRANSPORT: {
        "transport_role": TransportRole.HUB,
        "auth_mechanisms": (A.TLS, A.BASIC_AUTH, A.EXCHANGE_SERVER, A.INTEGRATED),
        "permission_groups": (P.EXCHANGE_LEGACY_SERVERS, P.EXCHANGE_SERVERS, P.EXCHANGE_USERS),
        "max_message_size": 35 * MB,
        "max_recipients_per_message": 5000,
    },
    ports.CLIENT_PROXY: {
        "transport_role": TransportRole.HUB,
        "auth_mechanisms": (A.TLS, A.BASIC_AUTH, A.BASIC_AUTH_REQUIRE_TLS, A.EXCHANGE_SERVER, A.INTEGRATED),
        "permission_groups": (P.EXCHANGE_SERVERS, P.EXCHANGE_USERS),
        "max_message_size": 35 * MB,
        "max_recipients_per_message": 200,
    },
    ports.EDGE_DEFAULT: {
        "transport_role": TransportRole.EDGE,
        "auth_mechanisms": (A.TLS, A.EXCHANGE_SERVER),
        "permission_groups": (P.ANONYMOUS_USERS, P.EXCHANGE_SERVERS, P.PARTNERS),
        "remote_ip_ranges": (ALL_IPV4,),
        # Edge timeouts are shorter than on Mailbox (§2: ConnectionTimeout 5 min, inactivity 1 min).
        "connection_timeout": 300.0,
        "connection_inactivity_timeout": 60.0,
    },
}


def seed_bindings(listen: Sequence[str], port: int, *, ipv6: bool = True) -> tuple[str, ...]:
    """The seed binds `0.0.0.0:PORT` and `[::]:PORT`; a server that listens on chosen addresses binds those."""
    if tuple(listen) == WILDCARD_LISTEN:
        return (
            (binding_for("0.0.0.0", port), binding_for("::", port))
            if ipv6
            else (binding_for("0.0.0.0", port),)
        )
    return tuple(binding_for(address, port) for address in listen)


def default_receive_connectors(
    server: str, roles: Iterable[Role | str], listen: Sequence[str] = WILDCARD_LISTEN
) -> list[ReceiveConnector]:
    """The receive connectors setup creates on a new server with these roles."""
    role_set = frozenset(Role(r) for r in roles)
    out = []
    for service in services_for(role_set):
        if service.connector is None:
            continue
        params = dict(_SEED[service.connector])
        # The one Edge connector listens on IPv4 only (§1).
        ipv6 = service.connector != ports.EDGE_DEFAULT
        out.append(
            ReceiveConnector(
                server=server,
                name=service.connector.format(server=server),
                bindings=seed_bindings(listen, service.port, ipv6=ipv6),
                **params,
            )
        )
    return out


USAGES = ("Client", "Custom", "Internal", "Internet", "Partner")


def usage_defaults(usage: str) -> dict[str, Any]:
    """New-ReceiveConnector -Usage: the permission groups, mechanisms and default binding it implies (§2)."""
    presets: dict[str, dict[str, Any]] = {
        "client": {
            "permission_groups": (P.EXCHANGE_USERS,),
            "auth_mechanisms": (A.TLS, A.BASIC_AUTH, A.BASIC_AUTH_REQUIRE_TLS, A.INTEGRATED),
            "bindings": ("0.0.0.0:587",),
        },
        "custom": {"permission_groups": (), "auth_mechanisms": (A.TLS,)},
        "internal": {
            "permission_groups": (P.EXCHANGE_LEGACY_SERVERS, P.EXCHANGE_SERVERS),
            "auth_mechanisms": (A.TLS, A.EXCHANGE_SERVER),
            "bindings": ("0.0.0.0:25",),
        },
        "internet": {
            "permission_groups": (P.ANONYMOUS_USERS,),
            "auth_mechanisms": (A.TLS,),
            "remote_ip_ranges": (ALL_IPV4,),
        },
        "partner": {"permission_groups": (P.PARTNERS,), "auth_mechanisms": (A.TLS,)},
    }
    try:
        return dict(presets[usage.lower()])
    except KeyError:
        raise PermanentError(f"usage {usage!r} is not one of {', '.join(USAGES)}") from None
