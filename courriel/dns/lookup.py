"""One DNS question, asked the way the next-hop resolver needs it: cached, retried, classified.

This is the resolver's only I/O seam. It wraps dnspython's stub resolver (which follows CNAME
chains inside an answer and retries over TCP when a UDP answer is truncated, RFC 7766 §5) and
turns every outcome into a `Lookup`: records, NODATA, NXDOMAIN, or a failure to retry later.
Positive answers are cached for their TTL (the smallest along a CNAME chain), negative ones for
the SOA-derived negative TTL of RFC 2308 §5, capped; failures are never cached. Concurrent
identical questions share one query.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.resolver

from courriel.core.errors import ConfigError
from courriel.dns.cache import TtlCache

DNS_PORT = 53
EDNS_PAYLOAD = 1232
MAX_POSITIVE_TTL = 86_400.0  # a day: bounds how long a stale answer can outlive a zone change
MAX_NEGATIVE_TTL = 300.0  # RFC 2308 §5 leaves the cap to us; 5 min lets a fixed zone heal quickly


class Status(Enum):
    ANSWER = "answer"
    NODATA = "nodata"  # the name exists, with no record of this type (RFC 2308 §2.2)
    NXDOMAIN = "nxdomain"  # the name does not exist (RFC 2308 §2.1)
    FAILED = "failed"  # SERVFAIL, REFUSED, timeout, network error: nothing is known


@dataclass(frozen=True, slots=True)
class Lookup:
    """The outcome of asking one (name, type); `records` is non-empty only for ANSWER."""

    status: Status
    records: tuple[dns.rdata.Rdata, ...] = ()
    detail: str = ""


def parse_endpoint(text: str, default_port: int = DNS_PORT) -> tuple[str, int]:
    """`127.0.0.53`, `10.0.0.2:5353`, `::1` or `[::1]:5353` as (address, port); ConfigError if bad."""
    host, port_text = text, None
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ConfigError(f"nameserver {text!r}: expected [IPv6] or [IPv6]:port")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:  # more colons: a bare IPv6 address, which takes no port
        host, _, port_text = text.partition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"nameserver {text!r}: not an IP address") from None
    if text.startswith("[") and address.version != 6:
        raise ConfigError(f"nameserver {text!r}: brackets are for IPv6 addresses")
    if port_text is None:
        return str(address), default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ConfigError(f"nameserver {text!r}: port must be 1-65535")
    return str(address), int(port_text)


def _system_resolver() -> dns.asyncresolver.Resolver:
    try:
        return dns.asyncresolver.Resolver(configure=True)
    except dns.exception.DNSException as exc:
        raise ConfigError(f"no usable system DNS configuration (/etc/resolv.conf): {exc}") from None


class RecordLookup:
    """Asks (name, type) questions of a fixed set of nameservers, with a cache in front."""

    def __init__(
        self,
        nameservers: Sequence[str] | None,
        *,
        timeout: float,
        attempts: int,
        clock: Callable[[], float] = time.monotonic,
        cache_size: int = 4096,
    ) -> None:
        if timeout <= 0 or attempts < 1:
            raise ConfigError("DNS timeout must be positive and attempts at least 1")
        if nameservers is None:
            self._resolver = _system_resolver()
        else:
            if not nameservers:
                raise ConfigError("at least one nameserver is needed")
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*parse_endpoint(text)) for text in nameservers
            ]
        self._resolver.cache = None  # ours below runs on the injected clock
        self._resolver.timeout = timeout  # one query to one server
        self._resolver.retry_servfail = False
        # EDNS0 with the DNS Flag Day 2020 buffer size: MX and address sets fit in one UDP answer
        # without IP fragmentation (RFC 6891 §6.2.5); larger ones come truncated, then over TCP.
        self._resolver.use_edns(0, 0, EDNS_PAYLOAD)
        # One attempt is one round over every server; dnspython moves to the next server when
        # one times out, and we start a fresh round (up to `attempts`) when all have failed.
        self._round = timeout * len(self._resolver.nameservers)
        self._attempts = attempts
        self._cache: TtlCache[tuple[dns.name.Name, dns.rdatatype.RdataType], Lookup] = TtlCache(
            cache_size, clock
        )
        self._inflight: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], asyncio.Future[Lookup]] = {}

    def clear_cache(self) -> None:
        self._cache.clear()

    async def lookup(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> Lookup:
        """The (possibly cached) outcome for an absolute `name` and `rdtype`; never raises for DNS."""
        key = (name, rdtype)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._query(name, rdtype))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _done: self._inflight.pop(key, None))
        # shield: one caller giving up must not cancel the query others are waiting on.
        return await asyncio.shield(pending)

    async def _query(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> Lookup:
        key = (name, rdtype)
        question = f"{name} {rdtype.name}"
        detail = ""
        for _attempt in range(self._attempts):
            try:
                answer = await self._resolver.resolve(
                    name, rdtype, raise_on_no_answer=False, lifetime=self._round, search=False
                )
            except dns.resolver.NXDOMAIN as exc:
                result = Lookup(Status.NXDOMAIN, detail=f"{question}: NXDOMAIN")
                response: dns.message.QueryMessage = exc.kwargs["responses"][name]
                negative_ttl = response.resolve_chaining().minimum_ttl
                self._cache.put(key, result, min(negative_ttl, MAX_NEGATIVE_TTL))  # RFC 2308 §5
                return result
            except dns.exception.DNSException as exc:
                # SERVFAIL/REFUSED (NoNameservers), timeouts (LifetimeTimeout), network errors,
                # malformed answers: RFC 5321 §4.5.4.1 has us try again later.
                detail = f"{question}: {exc}"
                continue
            ttl = answer.chaining_result.minimum_ttl
            if answer.rrset is None:
                result = Lookup(Status.NODATA, detail=f"{question}: no records")
                self._cache.put(key, result, min(ttl, MAX_NEGATIVE_TTL))  # RFC 2308 §5
            else:
                result = Lookup(Status.ANSWER, tuple(answer.rrset))
                self._cache.put(key, result, min(ttl, MAX_POSITIVE_TTL))
            return result
        return Lookup(Status.FAILED, detail=detail)
