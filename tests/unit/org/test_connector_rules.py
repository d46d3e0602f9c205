"""The rules connectors obey (exchange2013-facts.md §2), without a database; and the IP range parser."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courriel.core.errors import Conflict, PermanentError
from courriel.org.connector_rules import (
    check_address_space,
    check_auth_mechanisms,
    check_receive_conflicts,
    check_receive_connector,
    check_send_connector,
)
from courriel.org.ipranges import parse_binding, parse_ip_range
from courriel.org.model import AuthMechanism, PermissionGroup, ReceiveConnector, SendConnector, TransportRole

A = AuthMechanism
ROLES = ("client-access", "mailbox")


def connector(**changes: object) -> ReceiveConnector:
    base = ReceiveConnector(
        server="EX01", name="Relay", transport_role=TransportRole.FRONTEND, bindings=("0.0.0.0:25",)
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mechanisms", "groups", "require_tls", "error"),
    [
        ((A.NONE, A.TLS), (), False, "None cannot be combined"),
        ((A.BASIC_AUTH_REQUIRE_TLS, A.BASIC_AUTH), (), False, "BasicAuthRequireTLS needs BasicAuth and Tls"),
        ((A.BASIC_AUTH_REQUIRE_TLS, A.TLS), (), False, "BasicAuthRequireTLS needs BasicAuth and Tls"),
        (
            (A.EXTERNAL_AUTHORITATIVE, A.BASIC_AUTH),
            (PermissionGroup.EXCHANGE_SERVERS,),
            False,
            "only be combined with Tls",
        ),
        ((A.EXTERNAL_AUTHORITATIVE, A.TLS), (), False, "needs PermissionGroups ExchangeServers"),
        ((A.BASIC_AUTH,), (), True, "RequireTLS needs the Tls"),
        ((), (), False, "cannot be empty"),
    ],
)
def test_auth_mechanism_rules_refuse(
    mechanisms: tuple[AuthMechanism, ...], groups: tuple[PermissionGroup, ...], require_tls: bool, error: str
) -> None:
    with pytest.raises(PermanentError, match=error):
        check_auth_mechanisms(mechanisms, groups, require_tls, "connector")


@pytest.mark.parametrize(
    ("mechanisms", "groups", "require_tls"),
    [
        ((A.NONE,), (), False),
        ((A.TLS, A.BASIC_AUTH, A.BASIC_AUTH_REQUIRE_TLS), (), True),
        ((A.EXTERNAL_AUTHORITATIVE, A.TLS), (PermissionGroup.EXCHANGE_SERVERS,), True),
    ],
)
def test_auth_mechanism_rules_accept(
    mechanisms: tuple[AuthMechanism, ...], groups: tuple[PermissionGroup, ...], require_tls: bool
) -> None:
    check_auth_mechanisms(mechanisms, groups, require_tls, "connector")


def test_receive_connector_values_are_checked_and_normalized() -> None:
    clean = check_receive_connector(
        connector(bindings=("[0::0]:25", "0.0.0.0:25", "0.0.0.0:25"), fqdn="MX.Example.Test"), ROLES
    )
    assert clean.bindings == ("[::]:25", "0.0.0.0:25")
    assert clean.fqdn == "mx.example.test"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"bindings": ()}, "Bindings cannot be empty"),
        ({"bindings": ("0.0.0.0:70000",)}, "port must be 1-65535"),
        ({"bindings": ("::1:25",)}, "in brackets"),
        ({"remote_ip_ranges": ("10.0.0.0/33",)}, "not an IP address"),
        ({"remote_ip_ranges": ("10.0.0.9-10.0.0.1",)}, "ends before it starts"),
        ({"max_message_size": 1024}, "MaxMessageSize must be between 65536"),
        ({"max_recipients_per_message": 0}, "MaxRecipientsPerMessage must be between 1"),
        ({"connection_timeout": 60.0}, "ConnectionTimeout must be longer"),
        ({"banner": "hello"}, "starts with 220"),
        ({"banner": "220 a\r\n250 b"}, "one line"),
        ({"transport_role": TransportRole.EDGE}, "needs the edge role"),
    ]
    for changes, error in cases:
        with pytest.raises(PermanentError, match=error):
            check_receive_connector(connector(**changes), ROLES)
    with pytest.raises(PermanentError, match="needs the client-access role"):
        check_receive_connector(connector(), ("mailbox",))


def test_binding_and_remote_range_combinations_must_be_unique() -> None:
    everyone = connector(name="Internet", remote_ip_ranges=("0.0.0.0/0",))
    # A range inside another on the same binding is allowed: the most specific one wins.
    check_receive_conflicts(connector(remote_ip_ranges=("192.0.2.7",)), [everyone])
    # The same binding on another local address, or another port, is a different combination.
    check_receive_conflicts(
        connector(bindings=("127.0.0.1:25",), remote_ip_ranges=("0.0.0.0/0",)), [everyone]
    )
    with pytest.raises(Conflict, match="overlapping remote IP ranges"):
        check_receive_conflicts(connector(remote_ip_ranges=("0.0.0.0-255.255.255.255",)), [everyone])
    partial = connector(name="A", remote_ip_ranges=("10.0.0.0-10.0.0.200",))
    with pytest.raises(Conflict, match="overlapping"):
        check_receive_conflicts(connector(remote_ip_ranges=("10.0.0.100-10.0.1.0",)), [partial])


def test_different_transport_roles_cannot_share_a_listening_socket() -> None:
    hub = connector(name="Default EX01", transport_role=TransportRole.HUB, bindings=("0.0.0.0:25",))
    with pytest.raises(Conflict, match="different transport roles"):
        check_receive_conflicts(connector(bindings=("127.0.0.1:25",)), [hub])
    check_receive_conflicts(connector(bindings=("[::]:25",)), [hub])  # another address family
    check_receive_conflicts(connector(bindings=("0.0.0.0:2525",)), [hub])


SERVERS = {"ex01": ("EX01", ("client-access", "mailbox")), "cas1": ("CAS1", ("client-access",))}


def send(**changes: object) -> SendConnector:
    return dataclasses.replace(SendConnector(name="Internet", address_spaces=(("*", 1),)), **changes)  # type: ignore[arg-type]


def test_send_connector_rules() -> None:
    clean = check_send_connector(
        send(
            address_spaces=(("SMTP:Example.COM", 5), ("*.example.org", 1)), source_transport_servers=("ex01",)
        ),
        SERVERS,
    )
    assert clean.address_spaces == (("example.com", 5), ("*.example.org", 1))
    assert clean.source_transport_servers == ("EX01",)
    smart = check_send_connector(
        send(dns_routing_enabled=False, smart_hosts=("Relay.Example.NET", "[192.0.2.1]")), SERVERS
    )
    assert smart.smart_hosts == ("relay.example.net", "192.0.2.1")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"address_spaces": ()}, "AddressSpaces cannot be empty"),
        ({"address_spaces": (("*", 0),)}, "cost 0 must be 1-100"),
        ({"address_spaces": (("*", 101),)}, "cost 101 must be 1-100"),
        ({"address_spaces": (("ex*mple.com", 1),)}, "must be \\*, a domain or \\*.domain"),
        ({"address_spaces": (("*", 1), ("*", 2))}, "listed twice"),
        ({"smart_hosts": ("relay.example.net",)}, "SmartHosts need DNSRoutingEnabled false"),
        ({"dns_routing_enabled": False}, "SmartHosts cannot be empty"),
        ({"smart_host_auth_mechanism": "BasicAuth"}, "needs SmartHosts"),
        ({"smart_host_auth_mechanism": "Kerberos"}, "must be one of None"),
        ({"require_tls": True, "ignore_starttls": True}, "cannot both be true"),
        ({"tls_auth_level": "DomainValidation"}, "needs RequireTLS"),
        ({"require_tls": True, "tls_domain": "example.com"}, "TlsDomain needs TlsAuthLevel DomainValidation"),
        ({"source_transport_servers": ("ghost",)}, "not in the directory"),
        ({"source_transport_servers": ("cas1",)}, "runs neither the mailbox nor the edge role"),
        ({"port": 0}, "Port must be between 1"),
        ({"usage": "Relay"}, "Usage must be one of"),
    ]
    for changes, error in cases:
        with pytest.raises(PermanentError, match=error):
            check_send_connector(send(**changes), SERVERS)
    with pytest.raises(PermanentError, match="needs a user name and a password"):
        check_send_connector(
            send(
                dns_routing_enabled=False,
                smart_hosts=("relay.example.net",),
                smart_host_auth_mechanism="basicauth",
            ),
            SERVERS,
        )


def test_address_space_forms() -> None:
    assert check_address_space("*", 1, "c") == ("*", 1)
    assert check_address_space("--", 1, "c") == ("--", 1)
    assert check_address_space("SMTP:*.Contoso.com", 100, "c") == ("*.contoso.com", 100)


@given(st.ip_addresses(), st.integers(min_value=0, max_value=128))
def test_cidr_ranges_contain_their_own_addresses(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int
) -> None:
    prefix = min(prefix, address.max_prefixlen)
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    parsed = parse_ip_range(str(network))
    assert address in parsed and str(address) in parsed
    assert parsed.size == network.num_addresses
    assert network.network_address in parsed and network.broadcast_address in parsed


@given(st.ip_addresses(v=4), st.ip_addresses(v=4))
def test_first_last_ranges(a: ipaddress.IPv4Address, b: ipaddress.IPv4Address) -> None:
    low, high = sorted([a, b])
    parsed = parse_ip_range(f"{low}-{high}")
    assert parsed.first == int(low) and parsed.last == int(high)
    assert f"::ffff:{low}" in parsed  # a dual-stack socket's view of an IPv4 client


@given(st.ip_addresses(), st.integers(min_value=1, max_value=65535))
def test_bindings_round_trip(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> None:
    text = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    binding = parse_binding(text)
    assert (binding.address, binding.port) == (address, port)
    assert parse_binding(str(binding)) == binding


@given(st.text(max_size=30))
def test_range_parser_never_raises_anything_but_permanent_error(text: str) -> None:
    try:
        parse_ip_range(text)
    except PermanentError:
        pass
