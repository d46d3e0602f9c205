"""Async next-hop resolver: recipient domain → mail exchangers → addresses (RFC 5321 §5.1, RFC 7505).

Imports only `courriel.core` and dnspython. The public surface is `NextHopResolver`, `NextHop` and
the three errors; `lookup` holds the single I/O seam (dnspython's stub resolver behind a cache).
"""

from courriel.dns.errors import DnsTemporaryFailure, NoSuchDomain, NullMX
from courriel.dns.resolver import NextHop, NextHopResolver

__all__ = ["DnsTemporaryFailure", "NextHop", "NextHopResolver", "NoSuchDomain", "NullMX"]
