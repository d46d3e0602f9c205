"""The organization's flow table (org/flows.py) and its nft rules, from directory snapshots built in memory."""

from __future__ import annotations

import dataclasses

from courriel.admin.commands.nftables import address_matches, comment, server_rules
from courriel.org.defaults import default_receive_connectors
from courriel.org.flows import (
    CLIENTS,
    EDGE_FLOW,
    INTERNET,
    MAIL_FLOW,
    Endpoint,
    Flow,
    endpoint,
    organization_flows,
)
from courriel.org.model import (
    PermissionGroup,
    ProtocolSettings,
    ReceiveConnector,
    SendConnector,
    Server,
    TransportConfig,
    TransportRole,
)
from courriel.org.snapshot import DirectorySnapshot

CAS = Server("CAS1", "cas1.example.test", ("client-access",), "Site1", ("192.0.2.10",), 0)
MBX1 = Server("MBX1", "mbx1.example.test", ("mailbox",), "Site1", ("192.0.2.11",), 0)
MBX2 = Server("MBX2", "mbx2.example.test", ("mailbox",), "Site1", ("192.0.2.12", "2001:db8::12"), 10000)
ALL_IN_ONE = Server("EX01", "ex01.example.test", ("client-access", "mailbox"), "Site1", (), 0)
EDGE = Server("EDGE1", "edge1.example.test", ("edge",), "Site1", ("198.51.100.5",), 0)
INTERNET_CONNECTOR = SendConnector("To Internet", (("*", 1),))


def snapshot(
    servers: list[Server],
    send: list[SendConnector] = (),  # type: ignore[assignment]
    *,
    imap: bool = False,
    pop: bool = False,
    extra: list[ReceiveConnector] = (),  # type: ignore[assignment]
) -> DirectorySnapshot:
    receive = [c for s in servers for c in default_receive_connectors(s.name, s.roles)]
    return DirectorySnapshot.build(
        version=7,
        organization="Contoso",
        transport_config=TransportConfig(),
        imap_settings=ProtocolSettings(enabled=imap),
        pop_settings=ProtocolSettings(enabled=pop),
        domains=[],
        recipients=[],
        memberships=[],
        receive_connectors=[*receive, *extra],
        send_connectors=list(send),
        databases=[],
        servers=servers,
    )


def rows(flows: list[Flow]) -> set[tuple[str, str, int, str, str, str | None]]:
    return {
        (f.section, f.protocol, f.bound_port, f.source.name, f.destination.name, f.connector) for f in flows
    }


def test_client_flows_follow_the_protocol_settings() -> None:
    off = [f for f in organization_flows(snapshot([CAS, MBX1])) if f.section == CLIENTS]
    assert [(f.port, f.connector or f.service) for f in off] == [
        (443, "http-proxy"),
        (80, "http-proxy"),
        (587, "Client Frontend CAS1"),
    ]
    assert all(f.source.name == "Internet" and not f.source.addresses for f in off)
    assert off[0].destination.addresses == ("192.0.2.10",)
    on = organization_flows(snapshot([CAS, MBX1], imap=True, pop=True))
    assert [f.port for f in on if f.section == CLIENTS] == [443, 80, 143, 993, 110, 995, 587]
    back_ends = {(f.destination.name, f.port) for f in on if f.service and f.service.endswith("backend")}
    assert back_ends == {("MBX1", p) for p in (444, 81, 1143, 1993, 1110, 1995)}


def test_mail_flow_between_separate_servers_applies_each_destinations_offset() -> None:
    flows = organization_flows(snapshot([CAS, MBX1, MBX2], [INTERNET_CONNECTOR]))
    found = rows(flows)
    assert (MAIL_FLOW, "tcp", 25, "Internet", "CAS1", "Default Frontend CAS1") in found
    assert (MAIL_FLOW, "tcp", 25, "CAS1", "MBX1", "Default MBX1") in found
    assert (MAIL_FLOW, "tcp", 10025, "CAS1", "MBX2", "Default MBX2") in found
    assert (MAIL_FLOW, "tcp", 10465, "CAS1", "MBX2", "Client Proxy MBX2") in found
    assert (MAIL_FLOW, "tcp", 10025, "MBX1", "MBX2", "Default MBX2") in found
    assert (MAIL_FLOW, "tcp", 25, "MBX2", "MBX1", "Default MBX1") in found
    # Outbound leaves each Mailbox server directly; the remote port carries no offset.
    assert (MAIL_FLOW, "tcp", 25, "MBX2", "Internet", "To Internet") in found
    assert not any(f.destination.name == "Internet" and f.source.name == "CAS1" for f in flows)
    assert {(f.protocol, f.source.name) for f in flows if f.destination.name == "DNS"} == {
        (p, s) for p in ("udp", "tcp") for s in ("CAS1", "MBX1", "MBX2")
    }
    assert not any(f.section == EDGE_FLOW for f in flows)
    mbx2 = next(f for f in flows if f.destination.name == "MBX2")
    assert mbx2.destination.addresses == ("192.0.2.12", "2001:db8::12")


def test_front_end_proxy_sends_through_outbound_proxy_frontend_then_to_the_smart_hosts() -> None:
    connector = SendConnector(
        "Via CAS",
        (("*", 1),),
        dns_routing_enabled=False,
        smart_hosts=("relay.example.net",),
        port=2526,
        front_end_proxy_enabled=True,
    )
    found = rows(organization_flows(snapshot([CAS, MBX1, MBX2], [connector])))
    assert (MAIL_FLOW, "tcp", 717, "MBX1", "CAS1", "Outbound Proxy Frontend CAS1") in found
    assert (MAIL_FLOW, "tcp", 717, "MBX2", "CAS1", "Outbound Proxy Frontend CAS1") in found
    assert (MAIL_FLOW, "tcp", 2526, "CAS1", "Smart hosts", "Via CAS") in found
    assert not any(r[3].startswith("MBX") and r[4] == "Smart hosts" for r in found)


def test_source_transport_servers_limit_who_sends_and_disabled_connectors_have_no_flow() -> None:
    only_mbx2 = dataclasses.replace(INTERNET_CONNECTOR, source_transport_servers=("MBX2",))
    disabled = SendConnector("Off", (("example.org", 1),), enabled=False)
    found = rows(organization_flows(snapshot([CAS, MBX1, MBX2], [only_mbx2, disabled])))
    assert {r[3] for r in found if r[4] == "Internet" and r[0] == MAIL_FLOW} == {"MBX2"}
    assert not any(r[5] == "Off" for r in found)


def test_colocated_server_relays_to_its_own_transport_on_2525() -> None:
    found = rows(organization_flows(snapshot([ALL_IN_ONE, MBX1])))
    assert (MAIL_FLOW, "tcp", 2525, "EX01", "EX01", "Default EX01") in found
    assert (MAIL_FLOW, "tcp", 25, "EX01", "MBX1", "Default MBX1") in found
    assert (MAIL_FLOW, "tcp", 2525, "MBX1", "EX01", "Default EX01") in found


def test_admin_connectors_and_moved_bindings_appear_with_their_remote_ranges() -> None:
    partners = ReceiveConnector(
        "CAS1",
        "Partners",
        TransportRole.FRONTEND,
        ("192.0.2.10:2526",),
        remote_ip_ranges=("203.0.113.0/24",),
        permission_groups=(PermissionGroup.PARTNERS,),
    )
    devices = ReceiveConnector(
        "CAS1",
        "Old devices",
        TransportRole.FRONTEND,
        ("0.0.0.0:25",),
        remote_ip_ranges=("10.0.0.0-10.0.255.255",),
        permission_groups=(PermissionGroup.EXCHANGE_USERS,),
        comment="Scanners that submit on 25",
    )
    disabled = dataclasses.replace(partners, name="Unused", enabled=False)
    flows = organization_flows(snapshot([CAS, MBX1], extra=[partners, devices, disabled]))
    partner = next(f for f in flows if f.connector == "Partners")
    assert (partner.section, partner.port, partner.source.addresses) == (MAIL_FLOW, 2526, ("203.0.113.0/24",))
    assert partner.destination.addresses == ("192.0.2.10",)
    device = next(f for f in flows if f.connector == "Old devices")
    assert (device.section, device.purpose, device.source.addresses) == (
        CLIENTS,
        "Scanners that submit on 25",
        ("10.0.0.0-10.0.255.255",),
    )
    assert not any(f.connector == "Unused" for f in flows)


def test_edge_rows_appear_only_with_an_edge_and_take_the_internets_mail() -> None:
    assert not any(f.section == EDGE_FLOW for f in organization_flows(snapshot([CAS, MBX1])))
    flows = organization_flows(snapshot([CAS, MBX1, ALL_IN_ONE, EDGE]))
    found = rows(flows)
    assert (EDGE_FLOW, "tcp", 25, "Internet", "EDGE1", "Default internal Receive connector EDGE1") in found
    assert (EDGE_FLOW, "tcp", 25, "EDGE1", "MBX1", "Default MBX1") in found
    # Co-located: the Edge's mail reaches Front End Transport first.
    assert (EDGE_FLOW, "tcp", 25, "EDGE1", "EX01", "Default Frontend EX01") in found
    assert (EDGE_FLOW, "tcp", 25, "MBX1", "EDGE1", "Default internal Receive connector EDGE1") in found
    assert (EDGE_FLOW, "tcp", 25, "EDGE1", "Internet", "EdgeSync - Site1 to Internet") in found
    assert (EDGE_FLOW, "tcp", 50636, "MBX1", "EDGE1", None) in found
    assert (EDGE_FLOW, "udp", 53, "EDGE1", "DNS", None) in found
    # The Edge's default connector listens on IPv4 only, from anywhere.
    door = next(f for f in flows if f.destination.name == "EDGE1" and f.source.name == "Internet")
    assert door.source.addresses == ("0.0.0.0/0",)
    # With an Edge in the site, the Internet's mail no longer enters through Client Access.
    assert not any(f.source.name == "Internet" and f.connector == "Default Frontend CAS1" for f in flows)


def test_server_filter_keeps_what_it_sends_or_receives_in_the_seeds_order() -> None:
    flows = organization_flows(snapshot([CAS, MBX1, MBX2], [INTERNET_CONNECTOR]), "mbx1")
    assert flows and all("MBX1" in (f.source.name, f.destination.name) for f in flows)
    sections = [f.section for f in flows]
    assert sections == sorted(sections, key=[CLIENTS, MAIL_FLOW, EDGE_FLOW].index)
    assert organization_flows(snapshot([CAS]), "nobody") == []


def test_nft_rules_match_each_ip_family_separately_and_quote_comments_safely() -> None:
    v6_cas = dataclasses.replace(CAS, addresses=("192.0.2.10", "2001:db8::10"))
    dual = Endpoint("MBX2", MBX2.addresses, server=True)
    assert address_matches(endpoint(v6_cas), dual) == [
        "ip saddr 192.0.2.10 ip daddr 192.0.2.12 ",
        "ip6 saddr 2001:db8::10 ip6 daddr 2001:db8::12 ",
    ]
    assert address_matches(endpoint(CAS), dual) == ["ip saddr 192.0.2.10 ip daddr 192.0.2.12 "]
    assert address_matches(Endpoint("Internet", ("10.0.0.0-10.0.255.255", "2001:db8::/32")), INTERNET) == [
        "ip saddr 10.0.0.0-10.0.255.255 ",
        "ip6 saddr 2001:db8::/32 ",
    ]
    assert address_matches(INTERNET, Endpoint("EX01")) == [""]  # no address known: any
    assert address_matches(Endpoint("A", ("2001:db8::1",)), Endpoint("B", ("192.0.2.1",))) == []
    assert comment('say "hi" ' + "é" * 100) == "\"say 'hi' " + "é" * 59 + '"'  # 127 bytes, whole characters
    # A port pushed beyond 65535 by the offset is named, never written as a rule nft would refuse.
    far = dataclasses.replace(EDGE, port_offset=20000)
    lines = server_rules(far, organization_flows(snapshot([MBX1, far])))
    assert any(line.startswith("# edgesync-directory: port 70636") for line in lines)
    assert not any("70636" in line for line in lines if not line.startswith("#"))
