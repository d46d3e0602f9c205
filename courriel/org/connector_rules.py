"""The rules New-/Set-ReceiveConnector and New-/Set-SendConnector enforce (exchange2013-facts.md §2).

Pure checks over the model's dataclasses: each returns a normalized copy or raises PermanentError
(a bad value) or Conflict (a clash with another connector), naming the connector and parameter.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable

from courriel.core.errors import Conflict, PermanentError
from courriel.core.ports import Role
from courriel.org.codec import Bounds, check_bounds
from courriel.org.defaults import SERVICE_ROLE
from courriel.org.domains import normalize_domain, normalize_host
from courriel.org.ipranges import parse_binding, parse_ip_range, ranges_conflict
from courriel.org.model import MB, AuthMechanism, PermissionGroup, ReceiveConnector, SendConnector
from courriel.org.store import check_name

A = AuthMechanism
CONNECTOR_NAME_MAX = 64

# New-ReceiveConnector ranges (cmdlet reference).
RECEIVE_BOUNDS: Bounds = {
    "max_message_size": (64 * 1024, 2048 * MB),
    "max_recipients_per_message": (1, 512000),
    "max_inbound_connection": (1, 2147483647),
    "max_inbound_connection_per_source": (1, 10000),
    "connection_timeout": (1.0, 86400.0),
    "connection_inactivity_timeout": (1.0, 86400.0),
    "max_hop_count": (1, 500),
    "max_logon_failures": (0, 10),
    "max_protocol_errors": (0, 2147483647),
    "tarpit_interval": (0.0, 600.0),
}

# New-SendConnector ranges.
SEND_BOUNDS: Bounds = {
    "port": (1, 65535),
    "max_message_size": (64 * 1024, 2048 * MB),
    "connection_inactivity_timeout": (1.0, 86400.0),
}

SMART_HOST_AUTH = ("None", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer", "ExternalAuthoritative")
TLS_AUTH_LEVELS = ("EncryptionOnly", "CertificateValidation", "DomainValidation")
SEND_USAGES = ("Custom", "Internal", "Internet", "Partner")
# "--" stands for every authoritative and internal-relay accepted domain (EdgeSync's inbound connector).
ALL_ACCEPTED_DOMAINS = "--"


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def check_auth_mechanisms(
    mechanisms: tuple[AuthMechanism, ...], groups: tuple[PermissionGroup, ...], require_tls: bool, what: str
) -> None:
    chosen = set(mechanisms)
    if not chosen:
        raise PermanentError(f"{what}: AuthMechanism cannot be empty (use None)")
    if A.NONE in chosen and len(chosen) > 1:
        raise PermanentError(f"{what}: AuthMechanism None cannot be combined with other mechanisms")
    if A.BASIC_AUTH_REQUIRE_TLS in chosen and not {A.BASIC_AUTH, A.TLS} <= chosen:
        raise PermanentError(f"{what}: AuthMechanism BasicAuthRequireTLS needs BasicAuth and Tls as well")
    if A.EXTERNAL_AUTHORITATIVE in chosen:
        if not chosen <= {A.EXTERNAL_AUTHORITATIVE, A.TLS}:
            raise PermanentError(f"{what}: AuthMechanism ExternalAuthoritative can only be combined with Tls")
        if PermissionGroup.EXCHANGE_SERVERS not in groups:
            raise PermanentError(
                f"{what}: AuthMechanism ExternalAuthoritative needs PermissionGroups ExchangeServers"
            )
    if require_tls and A.TLS not in chosen:
        raise PermanentError(f"{what}: RequireTLS needs the Tls AuthMechanism")


def check_receive_connector(connector: ReceiveConnector, server_roles: Iterable[str]) -> ReceiveConnector:
    """A normalized copy of `connector`, or an error naming what is wrong."""
    name = check_name(connector.name, "receive connector", CONNECTOR_NAME_MAX)
    what = f"receive connector {name!r}"
    role = SERVICE_ROLE[connector.transport_role]
    if role.value not in server_roles:
        raise PermanentError(
            f"{what}: TransportRole {connector.transport_role.value} needs the {role.value} role,"
            f" which server {connector.server} does not run"
        )
    if not connector.bindings:
        raise PermanentError(f"{what}: Bindings cannot be empty")
    bindings = _unique(str(parse_binding(b)) for b in connector.bindings)
    if not connector.remote_ip_ranges:
        raise PermanentError(f"{what}: RemoteIPRanges cannot be empty")
    for text in connector.remote_ip_ranges:
        parse_ip_range(text)
    check_auth_mechanisms(connector.auth_mechanisms, connector.permission_groups, connector.require_tls, what)
    check_bounds(connector, RECEIVE_BOUNDS, what)
    if connector.connection_timeout <= connector.connection_inactivity_timeout:
        raise PermanentError(f"{what}: ConnectionTimeout must be longer than ConnectionInactivityTimeout")
    banner = connector.banner
    # The banner is sent as the greeting line itself: RFC 5321 §4.2 needs the 220 code.
    if banner is not None and (
        not banner.startswith("220") or any(c in banner for c in "\r\n") or len(banner) > 512
    ):
        raise PermanentError(f"{what}: Banner must be one line that starts with 220")
    fqdn = normalize_domain(connector.fqdn) if connector.fqdn else None
    return dataclasses.replace(
        connector,
        name=name,
        bindings=bindings,
        remote_ip_ranges=_unique(r.strip() for r in connector.remote_ip_ranges),
        permission_groups=tuple(dict.fromkeys(connector.permission_groups)),
        auth_mechanisms=tuple(dict.fromkeys(connector.auth_mechanisms)),
        fqdn=fqdn,
    )


def check_receive_conflicts(connector: ReceiveConnector, others: Iterable[ReceiveConnector]) -> None:
    """Every connector of a server needs its own (local IP, port, remote range) combination (§2)."""
    mine = [parse_binding(b) for b in connector.bindings]
    for other in others:
        theirs = [parse_binding(b) for b in other.bindings]
        if other.transport_role != connector.transport_role:
            # Two services cannot listen on one socket: ReceiveConnectorRoleConflictException (§1).
            for a in mine:
                for b in theirs:
                    if a.clashes_with(b):
                        raise Conflict(
                            f"receive connector {connector.name!r} binding {a} clashes with {b} of"
                            f" {other.name!r} ({other.transport_role.value}): connectors of different"
                            " transport roles on one server need distinct IP:port bindings"
                        )
            continue
        shared = {str(a) for a in mine} & {str(b) for b in theirs}
        if shared:
            clash = ranges_conflict(connector.remote_ip_ranges, other.remote_ip_ranges)
            if clash is not None:
                raise Conflict(
                    f"receive connector {connector.name!r} and {other.name!r} both bind {sorted(shared)[0]}"
                    f" with overlapping remote IP ranges ({clash}); a range may only overlap one that contains it"
                )


def check_address_space(pattern: str, cost: int, what: str) -> tuple[str, int]:
    text = pattern.strip().lower()
    if text.startswith("smtp:"):
        text = text[5:]
    if not 1 <= cost <= 100:
        raise PermanentError(f"{what}: address space {pattern!r} cost {cost} must be 1-100")
    if text in ("*", ALL_ACCEPTED_DOMAINS):
        return text, cost
    if text.startswith("*."):
        return "*." + normalize_domain(text[2:]), cost
    if "*" in text:
        raise PermanentError(f"{what}: address space {pattern!r} must be *, a domain or *.domain")
    return normalize_domain(text), cost


def check_source_ip_address(text: str, what: str) -> str:
    """SourceIPAddress: one IPv4 or IPv6 address, stored in its canonical form; 0.0.0.0 (or ::)
    leaves the choice to the kernel. Whether this computer holds it is known only where the
    connector's connections are made (transport/deliver/source.py)."""
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise PermanentError(
            f"{what}: SourceIPAddress must be an IPv4 or IPv6 address, not {text!r}"
        ) from None


def check_send_connector(
    connector: SendConnector, servers: dict[str, tuple[str, tuple[str, ...]]]
) -> SendConnector:
    """A normalized copy of `connector`; `servers` maps name keys to (name, roles) of known servers."""
    name = check_name(connector.name, "send connector", CONNECTOR_NAME_MAX)
    what = f"send connector {name!r}"
    if not connector.address_spaces:
        raise PermanentError(f"{what}: AddressSpaces cannot be empty")
    spaces = tuple(dict.fromkeys(check_address_space(p, c, what) for p, c in connector.address_spaces))
    patterns = [p for p, _ in spaces]
    if len(set(patterns)) != len(patterns):
        raise PermanentError(f"{what}: an address space is listed twice with different costs")
    smart_hosts = _unique(normalize_host(h.strip("[] ")) for h in connector.smart_hosts)
    if connector.dns_routing_enabled and smart_hosts:
        raise PermanentError(f"{what}: SmartHosts need DNSRoutingEnabled false")
    if not connector.dns_routing_enabled and not smart_hosts:
        raise PermanentError(f"{what}: with DNSRoutingEnabled false, SmartHosts cannot be empty")
    mechanism = next(
        (m for m in SMART_HOST_AUTH if m.lower() == connector.smart_host_auth_mechanism.lower()), None
    )
    if mechanism is None:
        raise PermanentError(f"{what}: SmartHostAuthMechanism must be one of {', '.join(SMART_HOST_AUTH)}")
    if mechanism != "None" and not smart_hosts:
        raise PermanentError(f"{what}: SmartHostAuthMechanism {mechanism} needs SmartHosts")
    if mechanism.startswith("BasicAuth") and not (connector.auth_username and connector.auth_password):
        raise PermanentError(f"{what}: SmartHostAuthMechanism {mechanism} needs a user name and a password")
    if connector.require_tls and connector.ignore_starttls:
        raise PermanentError(f"{what}: RequireTLS and IgnoreSTARTTLS cannot both be true")
    level = connector.tls_auth_level
    if level is not None:
        level = next((v for v in TLS_AUTH_LEVELS if v.lower() == level.lower()), None)
        if level is None:
            raise PermanentError(f"{what}: TlsAuthLevel must be one of {', '.join(TLS_AUTH_LEVELS)}")
        if not connector.require_tls:
            raise PermanentError(f"{what}: TlsAuthLevel needs RequireTLS true")
    if connector.tls_domain and level != "DomainValidation":
        raise PermanentError(f"{what}: TlsDomain needs TlsAuthLevel DomainValidation")
    usage = next((u for u in SEND_USAGES if u.lower() == connector.usage.lower()), None)
    if usage is None:
        raise PermanentError(f"{what}: Usage must be one of {', '.join(SEND_USAGES)}")
    sources = []
    for server in connector.source_transport_servers:
        known = servers.get(server.strip().casefold())
        if known is None:
            raise PermanentError(
                f"{what}: SourceTransportServers names {server!r}, which is not in the directory"
            )
        if not {Role.MAILBOX.value, Role.EDGE.value} & set(known[1]):
            raise PermanentError(
                f"{what}: source server {known[0]} runs neither the mailbox nor the edge role"
            )
        sources.append(known[0])
    check_bounds(connector, SEND_BOUNDS, what)
    return dataclasses.replace(
        connector,
        source_ip_address=check_source_ip_address(connector.source_ip_address, what),
        name=name,
        address_spaces=spaces,
        smart_hosts=smart_hosts,
        smart_host_auth_mechanism=mechanism,
        tls_auth_level=level,
        tls_domain=normalize_domain(connector.tls_domain) if connector.tls_domain else None,
        usage=usage,
        source_transport_servers=_unique(sources),
        fqdn=normalize_domain(connector.fqdn) if connector.fqdn else None,
    )
