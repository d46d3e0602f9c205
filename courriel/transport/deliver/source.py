"""Which local address a connection leaves from: this server's own, or one a send connector names.

A server of the organization is known to the others by the addresses it listens on (its
directory entry's `addresses`); their receive connectors' RemoteIPRanges and the organization's
firewall rules (`courriel ports --organization`) admit it by those. So a connection to another
server of ours leaves from the first specific address in the server config's `listen` of the
destination's family (IPv4 or IPv6), not from whatever the kernel picks (on loopback,
127.0.0.1). A server that listens only on a wildcard has no such address: the kernel chooses.
Connections to the Internet leave from the send connector's SourceIPAddress (Exchange's
parameter; 0.0.0.0, its default, means the kernel's choice).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

_WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def source_address(listen: Iterable[str], destination: str) -> str | None:
    """The first specific address of `listen` in the family of `destination` (an IP address);
    None for the kernel's choice: no such address, or a destination given by name (its family
    is only known once resolved, and a socket bound to the wrong family cannot connect)."""
    target = _ip(destination)
    if target is None:
        return None
    for entry in listen:
        if entry.strip() in _WILDCARDS:
            continue
        mine = _ip(entry)
        if mine is not None and mine.version == target.version:
            return str(mine)
    return None


def connector_source(source_ip_address: str) -> str | None:
    """A send connector's SourceIPAddress as a bind address; None (the kernel's choice) for an
    unspecified address (0.0.0.0 or ::)."""
    found = _ip(source_ip_address)
    return None if found is None or found.is_unspecified else str(found)
