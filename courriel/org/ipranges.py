"""Remote IP ranges and local bindings of receive connectors (New-ReceiveConnector -RemoteIPRanges, -Bindings).

A range is written as a single address, `first-last`, or CIDR (`10.0.0.0/8`), IPv4 or IPv6.
Ranges of one server's connectors may overlap only when one contains the other; the receiving
side then picks the most specific (smallest) range that holds the client's address
(exchange2013-facts.md §2).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from courriel.core.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class IPRange:
    version: int  # 4 or 6
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, address: object) -> bool:
        if isinstance(address, str):
            try:
                address = ipaddress.ip_address(address)
            except ValueError:
                return False
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        if (
            isinstance(address, ipaddress.IPv6Address)
            and address.ipv4_mapped is not None
            and self.version == 4
        ):
            address = address.ipv4_mapped  # a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
        return address.version == self.version and self.first <= int(address) <= self.last

    def overlaps(self, other: IPRange) -> bool:
        return self.version == other.version and self.first <= other.last and other.first <= self.last

    def contains_range(self, other: IPRange) -> bool:
        return self.version == other.version and self.first <= other.first and other.last <= self.last


def parse_ip_range(text: str) -> IPRange:
    """`192.0.2.7`, `192.0.2.0-192.0.2.255`, `10.0.0.0/8`, `2001:db8::/32` → an IPRange."""
    text = text.strip()
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            return IPRange(net.version, int(net.network_address), int(net.broadcast_address))
        if "-" in text:
            low_text, high_text = text.split("-", 1)
            low, high = ipaddress.ip_address(low_text.strip()), ipaddress.ip_address(high_text.strip())
            if low.version != high.version:
                raise PermanentError(f"IP range {text!r} mixes IPv4 and IPv6")
            if int(low) > int(high):
                raise PermanentError(f"IP range {text!r} ends before it starts")
            return IPRange(low.version, int(low), int(high))
        single = ipaddress.ip_address(text)
        return IPRange(single.version, int(single), int(single))
    except ValueError:
        raise PermanentError(f"{text!r} is not an IP address, a first-last range or a CIDR block") from None


def ranges_conflict(mine: Iterable[str], theirs: Iterable[str]) -> str | None:
    """The first pair of ranges that are equal or overlap partly (neither contains the other)."""
    parsed = [(t, parse_ip_range(t)) for t in theirs]
    for text_a in mine:
        a = parse_ip_range(text_a)
        for text_b, b in parsed:
            if a == b or (a.overlaps(b) and not a.contains_range(b) and not b.contains_range(a)):
                return f"{text_a} / {text_b}"
    return None


@dataclass(frozen=True, slots=True)
class Binding:
    """A local `IP:port` a connector listens on; `0.0.0.0` and `[::]` mean every local address."""

    address: IPAddress
    port: int

    @property
    def is_wildcard(self) -> bool:
        return self.address.is_unspecified

    def __str__(self) -> str:
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"

    def clashes_with(self, other: Binding) -> bool:
        """Two listeners that could not both bind: same port and family, same or wildcard address."""
        if self.port != other.port or self.address.version != other.address.version:
            return False
        return self.address == other.address or self.is_wildcard or other.is_wildcard


def parse_binding(text: str) -> Binding:
    """`0.0.0.0:25`, `127.0.0.1:2525`, `[::]:25`, `[2001:db8::1]:587` → a Binding."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise PermanentError(f"binding {text!r} must be IP:port (IPv6 as [addr]:port)")
    if host.startswith("["):
        if not host.endswith("]"):
            raise PermanentError(f"binding {text!r}: unbalanced brackets")
        host = host[1:-1]
    elif ":" in host:
        raise PermanentError(f"binding {text!r}: write an IPv6 address in brackets, as [::]:25")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise PermanentError(f"binding {text!r}: {host!r} is not an IP address") from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise PermanentError(f"binding {text!r}: the port must be 1-65535")
    return Binding(address, int(port_text))


def binding_for(listen_address: str, port: int) -> str:
    """The binding text for a server's `listen` address (as its config gives it) and a port."""
    return str(Binding(ipaddress.ip_address(listen_address), port))
