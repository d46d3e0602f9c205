"""The seed's default receive connectors per role (exchange2013-facts.md §1 and §8), stored and unstored."""

from __future__ import annotations

import pytest

from courriel.org.defaults import default_receive_connectors, usage_defaults
from courriel.org.directory import Directory
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
FULL_AUTH = {A.TLS, A.BASIC_AUTH, A.BASIC_AUTH_REQUIRE_TLS, A.EXCHANGE_SERVER, A.INTEGRATED}


def by_name(connectors: list[ReceiveConnector]) -> dict[str, ReceiveConnector]:
    return {c.name: c for c in connectors}


def test_colocated_server_gets_five_connectors_with_transport_on_2525() -> None:
    found = by_name(default_receive_connectors("EX01", ["client-access", "mailbox"]))
    assert set(found) == {
        "Default Frontend EX01",
        "Client Frontend EX01",
        "Outbound Proxy Frontend EX01",
        "Default EX01",
        "Client Proxy EX01",
    }
    frontend = found["Default Frontend EX01"]
    assert frontend.transport_role == TransportRole.FRONTEND
    assert frontend.bindings == ("0.0.0.0:25", "[::]:25")
    assert set(frontend.auth_mechanisms) == FULL_AUTH
    assert set(frontend.permission_groups) == {
        P.ANONYMOUS_USERS,
        P.EXCHANGE_LEGACY_SERVERS,
        P.EXCHANGE_SERVERS,
    }
    assert frontend.protocol_logging_level == LoggingLevel.VERBOSE
    assert (frontend.max_message_size, frontend.max_recipients_per_message) == (36 * MB, 200)
    assert frontend.remote_ip_ranges == ReceiveConnector.__dataclass_fields__["remote_ip_ranges"].default

    client = found["Client Frontend EX01"]
    assert client.bindings == ("0.0.0.0:587", "[::]:587")
    assert set(client.auth_mechanisms) == FULL_AUTH - {A.EXCHANGE_SERVER}
    assert client.permission_groups == (P.EXCHANGE_USERS,)
    assert (client.max_message_size, client.max_recipients_per_message) == (35 * MB, 200)
    assert client.protocol_logging_level == LoggingLevel.NONE

    proxy = found["Outbound Proxy Frontend EX01"]
    assert proxy.bindings == ("0.0.0.0:717", "[::]:717")
    assert set(proxy.auth_mechanisms) == FULL_AUTH
    assert proxy.permission_groups == (P.EXCHANGE_SERVERS,)
    assert proxy.max_message_size == 36 * MB

    transport = found["Default EX01"]
    assert transport.transport_role == TransportRole.HUB
    assert transport.bindings == ("0.0.0.0:2525", "[::]:2525")
    assert set(transport.auth_mechanisms) == {A.TLS, A.BASIC_AUTH, A.EXCHANGE_SERVER, A.INTEGRATED}
    assert set(transport.permission_groups) == {
        P.EXCHANGE_LEGACY_SERVERS,
        P.EXCHANGE_SERVERS,
        P.EXCHANGE_USERS,
    }
    assert (transport.max_message_size, transport.max_recipients_per_message) == (35 * MB, 5000)

    client_proxy = found["Client Proxy EX01"]
    assert client_proxy.transport_role == TransportRole.HUB
    assert client_proxy.bindings == ("0.0.0.0:465", "[::]:465")
    assert set(client_proxy.auth_mechanisms) == FULL_AUTH
    assert set(client_proxy.permission_groups) == {P.EXCHANGE_SERVERS, P.EXCHANGE_USERS}
    assert (client_proxy.max_message_size, client_proxy.max_recipients_per_message) == (35 * MB, 200)


def test_mailbox_only_server_keeps_port_25() -> None:
    found = by_name(default_receive_connectors("MBX1", ["mailbox"]))
    assert set(found) == {"Default MBX1", "Client Proxy MBX1"}
    assert found["Default MBX1"].bindings == ("0.0.0.0:25", "[::]:25")


def test_client_access_only_server_has_the_three_frontend_connectors() -> None:
    found = by_name(default_receive_connectors("CAS1", ["client-access"]))
    assert {c.transport_role for c in found.values()} == {TransportRole.FRONTEND}
    assert sorted(int(c.bindings[0].rsplit(":", 1)[1]) for c in found.values()) == [25, 587, 717]


def test_edge_has_one_ipv4_connector() -> None:
    (edge,) = default_receive_connectors("EDGE1", ["edge"])
    assert edge.name == "Default internal Receive connector EDGE1"
    assert edge.bindings == ("0.0.0.0:25",)
    assert edge.remote_ip_ranges == ("0.0.0.0-255.255.255.255",)
    assert set(edge.auth_mechanisms) == {A.TLS, A.EXCHANGE_SERVER}
    assert set(edge.permission_groups) == {P.ANONYMOUS_USERS, P.EXCHANGE_SERVERS, P.PARTNERS}


def test_listen_addresses_replace_the_wildcards() -> None:
    found = by_name(default_receive_connectors("demo", ["client-access", "mailbox"], ["127.0.0.1", "::1"]))
    assert found["Default Frontend demo"].bindings == ("127.0.0.1:25", "[::1]:25")
    assert found["Default demo"].bindings == ("127.0.0.1:2525", "[::1]:2525")


def test_usage_presets() -> None:
    assert usage_defaults("client")["bindings"] == ("0.0.0.0:587",)
    assert usage_defaults("Internal")["permission_groups"] == (P.EXCHANGE_LEGACY_SERVERS, P.EXCHANGE_SERVERS)
    assert usage_defaults("Internet")["remote_ip_ranges"] == ("0.0.0.0-255.255.255.255",)
    assert usage_defaults("Partner")["permission_groups"] == (P.PARTNERS,)
    with pytest.raises(Exception, match="not one of Client"):
        usage_defaults("Relay")


async def test_registration_stores_exactly_the_defaults(directory: Directory) -> None:
    for name, roles in [("S1", ["client-access", "mailbox"]), ("S2", ["mailbox"]), ("S3", ["client-access"])]:
        await directory.register_server(name, f"{name.lower()}.example.test", roles)
        stored = by_name(await directory.list_receive_connectors(name.lower()))
        assert stored == by_name(default_receive_connectors(name, roles))
