"""The categorizer: proxy addresses, groups (nested, looping), contacts, duplicates, routing."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from courriel.org.model import (
    AcceptedDomain,
    DomainType,
    Recipient,
    RecipientKind,
    SendConnector,
    TransportConfig,
)
from courriel.transport.categorize.resolver import Categorized, Categorizer, EnvelopeRecipient
from courriel.transport.route.nexthop import (
    DNS_CONNECTOR,
    MAILBOX_DELIVERY,
    SMART_HOST_CONNECTOR,
    UNREACHABLE,
    external_hop,
)


@dataclass
class FakeDirectory:
    recipients: list[Recipient]
    groups: dict[int, list[int]] = field(default_factory=dict)
    domains: dict[str, DomainType] = field(default_factory=dict)
    connectors: list[SendConnector] = field(default_factory=list)
    transport_config: TransportConfig = field(default_factory=TransportConfig)

    def recipient(self, address: str) -> Recipient | None:
        key = address.lower()
        return next((r for r in self.recipients if key in (a.lower() for a in r.addresses)), None)

    def accepted_domain(self, domain: str) -> AcceptedDomain | None:
        t = self.domains.get(domain.lower())
        return AcceptedDomain(domain, t) if t else None

    def default_domain(self) -> AcceptedDomain | None:
        return AcceptedDomain("example.test", DomainType.AUTHORITATIVE, default=True)

    def members(self, group_id: int) -> Sequence[Recipient]:
        return [r for r in self.recipients if r.id in self.groups.get(group_id, [])]

    def send_connectors(self) -> Sequence[SendConnector]:
        return self.connectors


def mailbox(rid: int, address: str, *aliases: str) -> Recipient:
    return Recipient(rid, RecipientKind.MAILBOX, address, address, (address, *aliases), database="DB01", guid=f"g{rid}")


def group(rid: int, address: str) -> Recipient:
    return Recipient(rid, RecipientKind.GROUP, address, address, (address,))


def directory() -> FakeDirectory:
    return FakeDirectory(
        recipients=[
            mailbox(1, "alice@example.test", "Alice.Smith@example.test"),
            mailbox(2, "bob@example.test"),
            group(3, "team@example.test"),
            group(4, "all@example.test"),
            Recipient(5, RecipientKind.CONTACT, "Ext", "ext@example.test", ("ext@example.test",), external_address="ext@partner.test"),
        ],
        groups={3: [1, 2, 4], 4: [3, 1]},  # team ⊃ all ⊃ team: a loop
        domains={"example.test": DomainType.AUTHORITATIVE, "relay.test": DomainType.INTERNAL_RELAY},
    )


def run(*addresses: str, d: FakeDirectory | None = None, size: int | None = None) -> Categorized:
    return Categorizer(d or directory(), "mx1", "mx1.example.test").categorize(
        [EnvelopeRecipient(a) for a in addresses], size
    )


def test_proxy_address_is_case_insensitive_and_resolves_to_the_primary() -> None:
    out = run("ALICE.smith@Example.Test")
    assert [(r.address, r.target, r.hop.key, r.hop.delivery_type) for r in out.resolved] == [
        ("alice@example.test", "g1", "mailbox:DB01", MAILBOX_DELIVERY)
    ]


def test_nested_looping_groups_expand_once_without_duplicates() -> None:
    out = run("team@example.test", "alice@example.test")
    assert sorted(r.address for r in out.resolved) == ["alice@example.test", "bob@example.test"]
    assert [g for g, _ in out.expanded] == ["team@example.test", "all@example.test"]
    assert all(r.original.address == "team@example.test" for r in out.resolved)


def test_contact_is_rewritten_to_its_external_address_and_routed_out() -> None:
    out = run("ext@example.test")
    assert [(r.address, r.hop.delivery_type) for r in out.resolved] == [("ext@partner.test", UNREACHABLE)]


def test_unknown_recipient_of_authoritative_domain_fails_internal_relay_routes_on() -> None:
    out = run("nobody@example.test", "someone@relay.test")
    assert [(f.address, f.status) for f in out.failed] == [("nobody@example.test", "5.1.10")]
    assert [r.hop.key for r in out.resolved] == ["unreachable:relay.test"]


def test_no_send_connector_means_unreachable() -> None:
    assert run("x@elsewhere.test").resolved[0].hop.key == "unreachable:elsewhere.test"


def test_most_specific_address_space_wins_then_lowest_cost() -> None:
    conns = [
        SendConnector("Internet", (("*", 1),)),
        SendConnector("Partner", (("*.partner.test", 5),), dns_routing_enabled=False, smart_hosts=("192.0.2.7",)),
        SendConnector("Cheap", (("*", 1),), source_transport_servers=("other",)),
        SendConnector("Exact", (("a.partner.test", 10),)),
        SendConnector("Off", (("b.partner.test", 1),), enabled=False),
    ]
    assert external_hop("x.example", conns, "mx1").connector == "Internet"
    assert external_hop("b.partner.test", conns, "mx1") .connector == "Partner"
    assert external_hop("b.partner.test", conns, "mx1").delivery_type == SMART_HOST_CONNECTOR
    assert external_hop("a.partner.test", conns, "mx1").connector == "Exact"
    assert external_hop("a.partner.test", conns, "mx1").delivery_type == DNS_CONNECTOR
    cheaper = [SendConnector("B", (("*", 2),)), SendConnector("A", (("*", 1),))]
    assert external_hop("x.example", cheaper, "mx1").connector == "A"


def test_postmaster_goes_to_the_configured_address_else_fails() -> None:
    d = directory()
    out = run("postmaster@example.test", "Postmaster@mx1.example.test", d=d)
    assert [(f.address, f.status) for f in out.failed] == [("postmaster@example.test", "5.1.10")] * 2
    d.transport_config = TransportConfig(postmaster_address="alice@example.test")
    out = run("Postmaster@mx1.example.test", "postmaster@example.test", d=d)
    assert [(r.address, r.target) for r in out.resolved] == [("alice@example.test", "g1")]  # once, not twice
    assert run("postmaster@elsewhere.test", d=d).resolved[0].hop.key == "unreachable:elsewhere.test"


def _limited(d: FakeDirectory, rid: int, limit: int) -> FakeDirectory:
    """The directory with recipient `rid`'s MaxReceiveSize set to `limit` bytes."""
    d.recipients = [dataclasses.replace(r, max_receive_size=limit) if r.id == rid else r for r in d.recipients]
    return d


def test_a_message_too_large_for_one_recipient_fails_that_one_alone() -> None:
    d = _limited(directory(), 1, 1000)
    out = run("alice@example.test", "bob@example.test", d=d, size=1001)
    assert [r.address for r in out.resolved] == ["bob@example.test"]
    [failed] = out.failed
    assert (failed.address, failed.code, failed.status) == ("alice@example.test", 552, "5.2.3")
    assert "RecipSizeLimit" in failed.text and not out.all_too_big
    # At the limit itself it fits; without a size (a DSN) nothing is checked.
    assert not run("alice@example.test", d=d, size=1000).failed
    assert not run("alice@example.test", d=d, size=None).failed


def test_a_group_member_is_held_to_its_own_limit() -> None:
    d = _limited(directory(), 2, 1000)
    out = run("team@example.test", d=d, size=5000)
    assert [r.address for r in out.resolved] == ["alice@example.test"]
    assert [(f.address, f.original.address, f.status) for f in out.failed] == [
        ("bob@example.test", "team@example.test", "5.2.3")
    ]


def test_a_group_over_its_own_limit_fails_whole_and_too_big_for_all_is_told() -> None:
    d = _limited(directory(), 3, 1000)
    out = run("team@example.test", d=d, size=5000)
    assert out.resolved == [] and [f.address for f in out.failed] == ["team@example.test"]
    assert out.all_too_big
    # bob twice (directly and through the group) fails once.
    d = _limited(_limited(directory(), 1, 1000), 2, 1000)
    out = run("bob@example.test", "team@example.test", d=d, size=5000)
    assert sorted(f.address for f in out.failed) == ["alice@example.test", "bob@example.test"]
    assert out.all_too_big
    # Anyone without a limit (here an external contact) keeps the transaction alive.
    assert not run("bob@example.test", "ext@example.test", d=d, size=5000).all_too_big
