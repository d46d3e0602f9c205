"""The resolver's cache: TTLs on the injected clock, negative caching (RFC 2308), bounds."""

from __future__ import annotations

import asyncio

import pytest

from courriel.dns import DnsTemporaryFailure, NoSuchDomain
from courriel.dns.cache import TtlCache
from courriel.dns.lookup import MAX_NEGATIVE_TTL, MAX_POSITIVE_TTL


async def test_answers_are_cached_for_their_ttl(zone, serve, make_resolver, clock):
    server = await serve(zone, negative_ttl=300)  # mx2's AAAA: NODATA
    resolver = make_resolver(server)
    first = await resolver.mx_hosts("example.net")
    asked = len(server.queries)
    assert asked == 5

    clock.advance(299)
    assert await resolver.mx_hosts("example.net") == first
    assert len(server.queries) == asked  # no second query

    server.records["mx2.example.net"]["A"] = "127.0.0.99"
    clock.advance(2)
    hops = await resolver.mx_hosts("example.net")
    assert hops[1].addresses == ("127.0.0.99",)
    assert len(server.queries) == 2 * asked


async def test_cname_chain_is_cached_for_its_shortest_ttl(serve, make_resolver, clock):
    zone = {
        "alias.example.net": {"CNAME": "host.example.net.", "ttl": 30},
        "host.example.net": {"A": "127.0.0.60", "ttl": 3600},
    }
    server = await serve(zone)
    resolver = make_resolver(server)
    await resolver.addresses("alias.example.net")
    clock.advance(29)
    await resolver.addresses("alias.example.net")
    assert server.queries.count(("alias.example.net", "A")) == 1
    clock.advance(2)
    await resolver.addresses("alias.example.net")
    assert server.queries.count(("alias.example.net", "A")) == 2


async def test_long_ttls_are_capped(serve, make_resolver, clock):
    server = await serve({"host.example.net": {"A": "127.0.0.61", "ttl": 30 * 86400}})
    resolver = make_resolver(server)
    await resolver.addresses("host.example.net")
    clock.advance(MAX_POSITIVE_TTL + 1)
    await resolver.addresses("host.example.net")
    assert server.queries.count(("host.example.net", "A")) == 2


@pytest.mark.parametrize(
    ("soa_ttl", "minimum", "cached_for"),
    [
        (600, 30, 30),  # RFC 2308 §5: the smaller of the SOA's TTL and its MINIMUM field
        (20, 600, 20),
        (86400, 86400, MAX_NEGATIVE_TTL),  # capped
    ],
)
async def test_nxdomain_is_cached_from_the_soa(serve, make_resolver, clock, soa_ttl, minimum, cached_for):
    zone = {
        "example.net": {
            "SOA": f"ns.example.net. hostmaster.example.net. 1 3600 600 86400 {minimum}",
            "ttl": soa_ttl,
        }
    }
    server = await serve(zone)
    resolver = make_resolver(server)
    for _ in range(2):
        with pytest.raises(NoSuchDomain):
            await resolver.mx_hosts("gone.example.net")
    clock.advance(cached_for - 1)
    with pytest.raises(NoSuchDomain):
        await resolver.mx_hosts("gone.example.net")
    assert server.queries == [("gone.example.net", "MX")]

    server.records["gone.example.net"] = {"A": "127.0.0.62"}  # the domain appears
    clock.advance(2)
    assert (await resolver.mx_hosts("gone.example.net"))[0].addresses == ("127.0.0.62",)


async def test_nodata_is_cached_negatively(serve, make_resolver, clock):
    server = await serve({"example.net": {"A": "127.0.0.63", "ttl": 3600}}, negative_ttl=45)
    resolver = make_resolver(server)
    await resolver.mx_hosts("example.net")  # MX: NODATA, then the implicit MX
    clock.advance(44)
    await resolver.mx_hosts("example.net")
    assert server.queries.count(("example.net", "MX")) == 1
    server.records["example.net"]["MX"] = (10, "mx.example.org.")
    server.records["mx.example.org"] = {"A": "127.0.0.64"}
    clock.advance(2)
    assert [h.host for h in await resolver.mx_hosts("example.net")] == ["mx.example.org"]


async def test_failures_are_not_cached(zone, serve, make_resolver):
    zone["example.net"]["behaviour"] = "servfail"
    server = await serve(zone)
    resolver = make_resolver(server)
    with pytest.raises(DnsTemporaryFailure):
        await resolver.mx_hosts("example.net")
    del zone["example.net"]["behaviour"]
    assert len(await resolver.mx_hosts("example.net")) == 2


async def test_concurrent_questions_share_one_query(zone, serve, make_resolver):
    server = await serve(zone)
    resolver = make_resolver(server)
    results = await asyncio.gather(*(resolver.mx_hosts("example.net") for _ in range(5)))
    assert all(r == results[0] for r in results)
    assert server.queries.count(("example.net", "MX")) == 1
    assert server.queries.count(("mx1.example.net", "A")) == 1


async def test_clear_cache_forgets(zone, serve, make_resolver):
    server = await serve(zone)
    resolver = make_resolver(server)
    await resolver.mx_hosts("example.net")
    resolver.clear_cache()
    await resolver.mx_hosts("example.net")
    assert server.queries.count(("example.net", "MX")) == 2


def test_ttl_cache_expires_on_the_clock(clock):
    cache: TtlCache[str, int] = TtlCache(10, clock)
    cache.put("a", 1, 5)
    clock.advance(4.9)
    assert cache.get("a") == 1
    clock.advance(0.1)
    assert cache.get("a") is None
    assert len(cache) == 0


def test_ttl_cache_zero_ttl_is_not_kept(clock):
    cache: TtlCache[str, int] = TtlCache(10, clock)
    cache.put("a", 1, 60)
    cache.put("a", 2, 0)
    assert cache.get("a") is None


def test_ttl_cache_evicts_the_least_recently_used(clock):
    cache: TtlCache[str, int] = TtlCache(2, clock)
    cache.put("a", 1, 60)
    cache.put("b", 2, 60)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3, 60)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


async def test_resolver_cache_is_bounded(serve, make_resolver):
    zone = {f"h{i}.example.net": {"A": f"127.0.2.{i}"} for i in range(10)}
    server = await serve(zone)
    resolver = make_resolver(server, cache_size=4)
    for i in range(10):
        await resolver.addresses(f"h{i}.example.net")
    await resolver.addresses("h9.example.net")  # still cached
    await resolver.addresses("h0.example.net")  # evicted long ago
    assert server.queries.count(("h9.example.net", "A")) == 1
    assert server.queries.count(("h0.example.net", "A")) == 2
