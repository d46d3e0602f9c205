"""Receive and send connectors stored in the directory, on both engines."""

from __future__ import annotations

import pytest

from courriel.core.errors import Conflict, NotFound, PermanentError
from courriel.org.directory import Directory
from courriel.org.model import MB, AuthMechanism, LoggingLevel, PermissionGroup, TransportRole


async def test_receive_connector_lifecycle(org: Directory) -> None:
    relay = await org.new_receive_connector(
        "ex01",
        "Internal Relay",
        usage="Internal",
        bindings=["0.0.0.0:2526"],
        remote_ip_ranges=["10.0.0.0/8", "192.0.2.7"],
        max_message_size=20 * MB,
        protocol_logging_level="verbose",
    )
    assert relay.server == "EX01" and relay.transport_role == TransportRole.FRONTEND
    assert relay.permission_groups == (
        PermissionGroup.EXCHANGE_LEGACY_SERVERS,
        PermissionGroup.EXCHANGE_SERVERS,
    )
    assert relay.auth_mechanisms == (AuthMechanism.TLS, AuthMechanism.EXCHANGE_SERVER)
    assert relay.protocol_logging_level == LoggingLevel.VERBOSE
    assert await org.get_receive_connector("EX01", "internal relay") == relay
    with pytest.raises(Conflict, match="already has a receive connector named 'INTERNAL RELAY'"):
        await org.new_receive_connector("EX01", "INTERNAL RELAY", bindings=["0.0.0.0:2527"])
    with pytest.raises(PermanentError, match="needs Bindings"):
        await org.new_receive_connector("EX01", "No binding")
    with pytest.raises(PermanentError, match="no parameter 'colour'"):
        await org.new_receive_connector("EX01", "Odd", bindings=["0.0.0.0:2528"], colour="blue")
    with pytest.raises(NotFound, match="no server named 'EX09'"):
        await org.new_receive_connector("EX09", "Odd", bindings=["0.0.0.0:2528"])

    renamed = await org.set_receive_connector("EX01", "Internal Relay", name="Relay", enabled=False)
    assert (renamed.name, renamed.enabled, renamed.max_message_size) == ("Relay", False, 20 * MB)
    with pytest.raises(Conflict, match="named 'Default EX01'"):
        await org.set_receive_connector("EX01", "Relay", name="Default EX01")
    with pytest.raises(PermanentError, match="no settable parameter 'server'"):
        await org.set_receive_connector("EX01", "Relay", server="OTHER")
    assert "Relay" in [c.name for c in await org.list_receive_connectors("EX01")]
    assert len(await org.list_receive_connectors()) == 6
    await org.remove_receive_connector("ex01", "relay")
    with pytest.raises(NotFound, match="has no receive connector named 'Relay'"):
        await org.remove_receive_connector("EX01", "Relay")


async def test_a_refused_change_leaves_the_connector_as_it_was(org: Directory) -> None:
    before = await org.get_receive_connector("EX01", "Default Frontend EX01")
    with pytest.raises(PermanentError, match="None cannot be combined"):
        await org.set_receive_connector("EX01", "Default Frontend EX01", auth_mechanisms=["None", "Tls"])
    with pytest.raises(PermanentError, match="RequireTLS needs the Tls"):
        await org.set_receive_connector(
            "EX01", "Default Frontend EX01", auth_mechanisms=["BasicAuth"], require_tls=True
        )
    with pytest.raises(PermanentError, match="not one of AnonymousUsers"):
        await org.set_receive_connector("EX01", "Default Frontend EX01", permission_groups=["Everyone"])
    assert await org.get_receive_connector("EX01", "Default Frontend EX01") == before


async def test_connector_uniqueness_on_a_server(org: Directory) -> None:
    # Default Frontend EX01 holds 0.0.0.0:25 for every address: a narrower range may share it.
    partner = await org.new_receive_connector(
        "EX01", "Partner", usage="Partner", bindings=["0.0.0.0:25"], remote_ip_ranges=["198.51.100.0/24"]
    )
    assert partner.permission_groups == (PermissionGroup.PARTNERS,)
    with pytest.raises(Conflict, match="both bind 0.0.0.0:25 with overlapping remote IP ranges"):
        await org.new_receive_connector(
            "EX01", "Twin", bindings=["0.0.0.0:25"], remote_ip_ranges=["198.51.100.0/24"]
        )
    # The Transport service cannot take 25 from the Front End Transport service on one server (§1).
    with pytest.raises(Conflict, match="different transport roles"):
        await org.set_receive_connector("EX01", "Default EX01", bindings=["127.0.0.1:25"])
    with pytest.raises(Conflict, match="different transport roles"):
        await org.new_receive_connector(
            "EX01", "Hub on 587", transport_role="HubTransport", bindings=["0.0.0.0:587"]
        )


async def test_send_connector_lifecycle(org: Directory) -> None:
    internet = await org.new_send_connector(
        "To Internet", address_spaces=[["*", 1]], source_transport_servers=["ex01"]
    )
    assert internet.dns_routing_enabled and internet.address_spaces == (("*", 1),)
    assert internet.source_transport_servers == ("EX01",)
    smart = await org.new_send_connector(
        "Partner",
        address_spaces=[("SMTP:partner.example", 10), ("*.partner.example", 10)],
        dns_routing_enabled=False,
        smart_hosts=["relay.partner.example"],
        smart_host_auth_mechanism="BasicAuth",
        auth_username="courriel",
        auth_password="secret",
        require_tls=True,
        tls_auth_level="domainvalidation",
        tls_domain="relay.partner.example",
    )
    assert smart.tls_auth_level == "DomainValidation" and smart.auth_password == "secret"
    with pytest.raises(Conflict, match="named 'to internet' exists"):
        await org.new_send_connector("to internet", address_spaces=[["*", 5]])
    with pytest.raises(PermanentError, match="needs AddressSpaces"):
        await org.new_send_connector("Empty")
    with pytest.raises(PermanentError, match="SmartHosts need DNSRoutingEnabled false"):
        await org.set_send_connector("To Internet", smart_hosts=["relay.example.net"])
    moved = await org.set_send_connector(
        "to internet", name="Outbound", dns_routing_enabled=False, smart_hosts=["192.0.2.25"], port=2525
    )
    assert (moved.name, moved.smart_hosts, moved.port) == ("Outbound", ("192.0.2.25",), 2525)
    assert [c.name for c in await org.list_send_connectors()] == ["Outbound", "Partner"]
    await org.remove_send_connector("OUTBOUND")
    with pytest.raises(NotFound, match="no send connector named 'Outbound'"):
        await org.get_send_connector("Outbound")
