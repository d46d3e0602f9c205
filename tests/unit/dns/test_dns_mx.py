"""MX selection (RFC 5321 §5.1, RFC 7505) against a real DNS server on loopback."""

from __future__ import annotations

import itertools
import random

import pytest

from courriel.core.errors import PermanentError, TransientError
from courriel.dns import DnsTemporaryFailure, NextHop, NoSuchDomain, NullMX
from courriel.dns.resolver import MAX_MX_HOSTS


async def test_mx_hosts_by_preference_with_their_addresses(zone, serve, make_resolver):
    server = await serve(zone)
    hops = await make_resolver(server).mx_hosts("example.net")
    assert hops == [
        NextHop("mx1.example.net", 10, ("127.0.0.21", "::1")),
        NextHop("mx2.example.net", 20, ("127.0.0.22",)),
    ]
    assert server.queries[0] == ("example.net", "MX")
    assert sorted(server.queries[1:]) == [
        ("mx1.example.net", "A"),
        ("mx1.example.net", "AAAA"),
        ("mx2.example.net", "A"),
        ("mx2.example.net", "AAAA"),
    ]


async def test_equal_preferences_are_shuffled_by_the_injected_rng(serve, make_resolver):
    zone = {
        "example.net": {
            "MX": [
                (10, "a.example.net."),
                (10, "b.example.net."),
                (10, "c.example.net."),
                (5, "z.example.net."),
            ]
        },
        **{f"{h}.example.net": {"A": f"127.0.0.{i + 1}"} for i, h in enumerate("abcz")},
    }
    server = await serve(zone)
    resolver = make_resolver(server, rng=random.Random(1))
    orders = []
    for _ in range(60):  # answers are cached: only the shuffle differs between calls
        hops = await resolver.mx_hosts("example.net")
        assert hops[0] == NextHop("z.example.net", 5, ("127.0.0.4",))
        assert {h.preference for h in hops[1:]} == {10}
        orders.append(tuple(h.host for h in hops[1:]))
    assert set(orders) == set(itertools.permutations(["a.example.net", "b.example.net", "c.example.net"]))
    assert len(server.queries) == 9

    # Same seed, same orders, whatever order the server lists the records in.
    zone["example.net"]["MX"].reverse()
    again = make_resolver(server, rng=random.Random(1))
    assert [tuple(h.host for h in (await again.mx_hosts("example.net"))[1:]) for _ in range(60)] == orders


async def test_no_mx_means_the_implicit_mx(serve, make_resolver):
    server = await serve({"example.net": {"A": "127.0.0.30", "AAAA": "::1", "TXT": '"v=spf1 -all"'}})
    hops = await make_resolver(server).mx_hosts("example.net")
    assert hops == [NextHop("example.net", 0, ("127.0.0.30", "::1"))]


async def test_null_mx_refuses_delivery(serve, make_resolver):
    server = await serve({"example.net": {"MX": "0 .", "A": "127.0.0.30"}})
    with pytest.raises(NullMX) as caught:
        await make_resolver(server).mx_hosts("example.net")
    assert isinstance(caught.value, PermanentError)
    assert caught.value.public.startswith("556 5.1.10 ")
    assert server.queries == [("example.net", "MX")]  # no address lookups, no implicit MX


async def test_null_mx_beside_a_real_exchanger_is_ignored(zone, serve, make_resolver):
    zone["example.net"]["MX"] = ["0 .", (10, "mx1.example.net.")]
    hops = await make_resolver(await serve(zone)).mx_hosts("example.net")
    assert [h.host for h in hops] == ["mx1.example.net"]


async def test_nxdomain_is_permanent(zone, serve, make_resolver):
    server = await serve(zone)
    with pytest.raises(NoSuchDomain) as caught:
        await make_resolver(server).mx_hosts("nowhere.example.net")
    assert isinstance(caught.value, PermanentError)
    assert caught.value.public.startswith("550 5.4.4 ")
    assert "nowhere.example.net" not in caught.value.public  # the log gets the names
    assert "NXDOMAIN" in caught.value.detail


async def test_exchanger_without_addresses_is_skipped(zone, serve, make_resolver):
    zone["example.net"]["MX"].append((5, "gone.example.net."))  # NXDOMAIN
    zone["example.net"]["MX"].append((6, "bare.example.net."))  # NODATA for A and AAAA
    zone["bare.example.net"] = {"TXT": '"no address here"'}
    hops = await make_resolver(await serve(zone)).mx_hosts("example.net")
    assert [h.host for h in hops] == ["mx1.example.net", "mx2.example.net"]


@pytest.mark.parametrize(
    ("hosts", "error"),
    [
        ({}, NoSuchDomain),  # every exchanger NXDOMAIN
        ({"mx1.example.net": {"TXT": '"x"'}}, DnsTemporaryFailure),  # one exists without address
        ({"mx1.example.net": {"behaviour": "servfail"}}, DnsTemporaryFailure),
    ],
)
async def test_no_exchanger_with_an_address(serve, make_resolver, hosts, error):
    zone = {"example.net": {"MX": [(10, "mx1.example.net."), (20, "mx2.example.net.")]}, **hosts}
    with pytest.raises(error) as caught:
        await make_resolver(await serve(zone)).mx_hosts("example.net")
    assert "mx1.example.net" in caught.value.detail and "mx2.example.net" in caught.value.detail


async def test_implicit_mx_without_address_is_transient(serve, make_resolver):
    server = await serve({"example.net": {"TXT": '"no mail here"'}})
    with pytest.raises(TransientError):
        await make_resolver(server).mx_hosts("example.net")


async def test_cname_chain_for_an_mx_target(serve, make_resolver):
    zone = {
        "example.net": {"MX": (10, "mail.example.net.")},
        "mail.example.net": {"CNAME": "relay.example.org."},
        "relay.example.org": {"CNAME": "host.example.com."},
        "host.example.com": {"A": "127.0.0.40", "AAAA": "::1"},
    }
    server = await serve(zone)
    hops = await make_resolver(server).mx_hosts("example.net")
    # The exchanger keeps the name the MX gave (RFC 5321 §5.1); the addresses are the target's.
    assert hops == [NextHop("mail.example.net", 10, ("127.0.0.40", "::1"))]
    assert ("host.example.com", "A") not in server.queries  # the chain came in one answer


async def test_ipv6_only_exchanger_over_an_ipv6_nameserver(serve, make_resolver):
    zone = {
        "example.net": {"MX": (10, "mx6.example.net.")},
        "mx6.example.net": {"AAAA": ["::1", "2001:db8::25"]},
    }
    server = await serve(zone, host="::1")
    assert server.address.startswith("[::1]:")
    hops = await make_resolver(server).mx_hosts("example.net")
    assert hops == [NextHop("mx6.example.net", 10, ("::1", "2001:db8::25"))]


async def test_duplicate_exchangers_merge_at_their_best_preference(zone, serve, make_resolver):
    zone["example.net"]["MX"] = [(30, "mx1.example.net."), (10, "MX1.example.net."), (20, "mx2.example.net.")]
    hops = await make_resolver(await serve(zone)).mx_hosts("example.net")
    assert [(h.host, h.preference) for h in hops] == [("mx1.example.net", 10), ("mx2.example.net", 20)]


async def test_exchangers_are_bounded(serve, make_resolver):
    zone = {"example.net": {"MX": [(i, f"mx{i}.example.net.") for i in range(25)]}}
    zone |= {f"mx{i}.example.net": {"A": f"127.0.1.{i}"} for i in range(25)}
    server = await serve(zone)
    hops = await make_resolver(server).mx_hosts("example.net")
    assert [h.preference for h in hops] == list(range(MAX_MX_HOSTS))
    assert len(server.queries) == 1 + 2 * MAX_MX_HOSTS


@pytest.mark.parametrize(
    ("domain", "hop"),
    [
        ("[192.0.2.1]", NextHop("[192.0.2.1]", 0, ("192.0.2.1",))),
        ("[IPv6:2001:DB8::1]", NextHop("[IPv6:2001:db8::1]", 0, ("2001:db8::1",))),
        ("[ipv6:::1]", NextHop("[IPv6:::1]", 0, ("::1",))),
    ],
)
async def test_address_literal_needs_no_dns(serve, make_resolver, domain, hop):
    server = await serve({})
    assert await make_resolver(server).mx_hosts(domain) == [hop]
    assert server.queries == []


@pytest.mark.parametrize(
    "domain",
    ["[192.0.2.300]", "[IPv6:192.0.2.1]", "[2001:db8::1]", "[192.0.2.1", "a..b", "x" * 64 + ".net", "@", "."],
)
async def test_malformed_domain_is_permanent_and_asks_nothing(serve, make_resolver, domain):
    server = await serve({})
    with pytest.raises(NoSuchDomain):
        await make_resolver(server).mx_hosts(domain)
    assert server.queries == []


async def test_idna_domain_is_asked_in_a_labels(serve, make_resolver):
    zone = {
        "bücher.example": {"MX": (10, "mx.xn--bcher-kva.example.")},
        "mx.bücher.example": {"A": "127.0.0.50"},
        "xn--strae-oqa.example": {"A": "127.0.0.51"},  # IDNA 2008: ß is kept, not mapped to "ss"
    }
    server = await serve(zone)
    resolver = make_resolver(server)
    assert await resolver.mx_hosts("Bücher.example") == [
        NextHop("mx.xn--bcher-kva.example", 10, ("127.0.0.50",))
    ]
    assert server.queries[0] == ("xn--bcher-kva.example", "MX")
    hops = await resolver.mx_hosts("straße.example")
    assert hops == [NextHop("xn--strae-oqa.example", 0, ("127.0.0.51",))]
