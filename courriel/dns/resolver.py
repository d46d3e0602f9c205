"""Next-hop resolution for SMTP delivery: a recipient domain to an ordered list of mail exchangers.

RFC 5321 §5.1 is followed throughout: MX records are tried by preference, in random order among
equal preferences; a domain without MX records is its own implicit MX of preference 0; MX hosts
whose addresses cannot be found are skipped. RFC 7505 null MX refuses delivery outright. Address
literals (RFC 5321 §4.1.3) need no DNS. Each exchanger's A and AAAA are asked concurrently.
Outcomes map onto the core error tree: NXDOMAIN is permanent, anything that might clear is
transient (the queue retries). The route stage calls `mx_hosts`; the SMTP client `addresses`
for smart hosts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import dns.name
import dns.rdatatype
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA

from courriel.core.errors import ConfigError
from courriel.dns.errors import DnsTemporaryFailure, NoSuchDomain, NullMX
from courriel.dns.lookup import Lookup, RecordLookup, Status
from courriel.dns.names import address_literal, host_text, ip_literal, literal_host, query_name

# Bounded: a hostile zone may list hundreds of exchangers, each costing two queries. Postfix
# stops at a handful of addresses too (smtp_mx_address_limit).
MAX_MX_HOSTS = 10


@dataclass(frozen=True, slots=True)
class NextHop:
    """One mail exchanger to try: its host name (A-labels, or an address literal) and addresses.

    `addresses` are IPv4 then IPv6 literals, each family in the order DNS gave them.
    """

    host: str
    preference: int
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _HostAddresses:
    addresses: tuple[str, ...]
    status: Status  # ANSWER when any address was found, else the combined A/AAAA outcome
    detail: str


class NextHopResolver:
    """Resolves recipient domains to next hops, with a TTL-aware cache; safe to share per process."""

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        timeout: float = 5.0,
        attempts: int = 2,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        cache_size: int = 4096,
    ) -> None:
        """`nameservers` like `["127.0.0.53", "10.0.0.2:5353", "[::1]:5353"]`; None reads resolv.conf.

        `timeout` bounds one query to one server; `attempts` is how many rounds over all servers
        a question gets before it counts as a temporary failure.
        """
        if not dns.name.have_idna_2008:
            raise ConfigError("the 'idna' package is required to resolve internationalized domains")
        self._lookup = RecordLookup(
            nameservers, timeout=timeout, attempts=attempts, clock=clock, cache_size=cache_size
        )
        self._rng = rng if rng is not None else random.Random()

    def clear_cache(self) -> None:
        self._lookup.clear_cache()

    async def mx_hosts(self, domain: str) -> list[NextHop]:
        """The mail exchangers for `domain`, best first, each with at least one address.

        Raises NullMX, NoSuchDomain (permanent) or DnsTemporaryFailure (transient).
        """
        literal = address_literal(domain)
        if literal is not None:
            return [NextHop(literal_host(literal), 0, (literal,))]  # RFC 5321 §5.1: no DNS
        name = query_name(domain)
        mx = await self._lookup.lookup(name, dns.rdatatype.MX)
        if mx.status is Status.FAILED:
            raise DnsTemporaryFailure(domain, mx.detail)
        if mx.status is Status.NXDOMAIN:
            raise NoSuchDomain(domain, mx.detail)
        if mx.status is Status.NODATA:
            exchangers = [(0, name)]  # RFC 5321 §5.1: the implicit MX
        else:
            exchangers = self._ordered(domain, mx)[:MAX_MX_HOSTS]
        found = await asyncio.gather(*(self._host_addresses(host) for _, host in exchangers))
        hops = [
            NextHop(host_text(host), preference, result.addresses)
            for (preference, host), result in zip(exchangers, found, strict=True)
            if result.addresses  # RFC 5321 §5.1: an exchanger without addresses is skipped
        ]
        if hops:
            return hops
        detail = f"{domain}: no mail exchanger has an address: " + "; ".join(r.detail for r in found)
        if all(result.status is Status.NXDOMAIN for result in found):
            raise NoSuchDomain(domain, detail)
        raise DnsTemporaryFailure(domain, detail)

    async def addresses(self, host: str) -> tuple[str, ...]:
        """A then AAAA addresses of `host` (CNAMEs followed); an IP or address literal as is.

        A host that exists with no address gives `()`; NXDOMAIN raises NoSuchDomain and a failed
        lookup with no address found raises DnsTemporaryFailure.
        """
        literal = ip_literal(host) or address_literal(host)
        if literal is not None:
            return (literal,)
        result = await self._host_addresses(query_name(host))
        if result.status is Status.NXDOMAIN:
            raise NoSuchDomain(host, result.detail)
        if result.status is Status.FAILED:
            raise DnsTemporaryFailure(host, result.detail)
        return result.addresses

    def _ordered(self, domain: str, mx: Lookup) -> list[tuple[int, dns.name.Name]]:
        """MX records by preference, shuffled among equals (RFC 5321 §5.1), duplicates merged."""
        best: dict[dns.name.Name, int] = {}
        for rdata in mx.records:
            record = cast(MX, rdata)
            # RFC 7505 §3: "." as exchange means no mail; a real host beside it is a zone
            # error we forgive by ignoring the null record.
            if record.exchange != dns.name.root:
                exchange = record.exchange.canonicalize()
                best[exchange] = min(record.preference, best.get(exchange, record.preference))
        if not best:
            raise NullMX(domain)  # RFC 7505 §4.1: MUST NOT attempt delivery
        ordered: list[tuple[int, dns.name.Name]] = []
        for preference in sorted(set(best.values())):
            # Sorted first so that the order depends on the random source alone, not on the
            # order the server happened to list the records in.
            equals = sorted(host for host, p in best.items() if p == preference)
            self._rng.shuffle(equals)
            ordered.extend((preference, host) for host in equals)
        return ordered

    async def _host_addresses(self, name: dns.name.Name) -> _HostAddresses:
        v4, v6 = await asyncio.gather(
            self._lookup.lookup(name, dns.rdatatype.A), self._lookup.lookup(name, dns.rdatatype.AAAA)
        )
        addresses = tuple(cast(A, r).address for r in v4.records) + tuple(
            cast(AAAA, r).address for r in v6.records
        )
        statuses = {v4.status, v6.status}
        if addresses:
            status = Status.ANSWER
        elif Status.FAILED in statuses:
            status = Status.FAILED
        elif statuses == {Status.NXDOMAIN}:
            status = Status.NXDOMAIN
        else:
            status = Status.NODATA
        detail = "; ".join(lookup.detail for lookup in (v4, v6) if lookup.detail)
        return _HostAddresses(addresses, status, detail)
