"""Domains as the resolver receives them, turned into what DNS is asked (or into no question at all).

A mail domain is either a name, encoded to A-labels before lookup (IDNA 2008 with UTS #46 mapping,
RFC 5890/5891, as RFC 6531 §3.2 expects for SMTPUTF8 domains), or an address literal
(`[192.0.2.1]`, `[IPv6:2001:db8::1]`, RFC 5321 §4.1.3) that names its host without DNS.
"""

from __future__ import annotations

import ipaddress
import re

import dns.exception
import dns.name

from courriel.dns.errors import NoSuchDomain

# RFC 5321 §4.1.2: sub-domain = Let-dig [Ldh-str]; checked on the A-label form.
_LDH_LABEL = re.compile(rb"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z", re.IGNORECASE)


def ip_literal(text: str) -> str | None:
    """The address if `text` is a bare IPv4/IPv6 address, normalized; None if it is not one."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def address_literal(domain: str) -> str | None:
    """The address inside an RFC 5321 §4.1.3 address literal, None if `domain` is not bracketed.

    Raises NoSuchDomain for a bracketed text that is no valid literal: it can never be routed.
    """
    if not domain.startswith("["):
        return None
    inner = domain[1:-1] if domain.endswith("]") else ""
    try:
        if inner[:5].lower() == "ipv6:":
            return str(ipaddress.IPv6Address(inner[5:]))
        return str(ipaddress.IPv4Address(inner))
    except ValueError:
        raise NoSuchDomain(domain, f"{domain!r}: malformed address literal") from None


def literal_host(address: str) -> str:
    """The address literal that names `address` as a host (RFC 5321 §4.1.3)."""
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"


def query_name(domain: str) -> dns.name.Name:
    """The absolute DNS name for a domain or host name, in A-labels (IDNA 2008, RFC 5891 §4).

    A single trailing dot is accepted (configured host names often carry one). Anything that is
    not a sequence of letter-digit-hyphen labels once encoded raises NoSuchDomain: such a name
    cannot exist as a mail domain, so asking DNS would only waste a query.
    """
    text = domain[:-1] if domain.endswith(".") else domain
    # "@" and backslash escapes mean something to the master-file syntax dnspython parses, not
    # to a mail domain; refuse them before they are interpreted.
    if not text or "@" in text or "\\" in text:
        raise NoSuchDomain(domain, f"{domain!r}: not a domain name")
    try:
        name = dns.name.from_text(text, origin=dns.name.root, idna_codec=dns.name.IDNA_2008_Practical)
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise NoSuchDomain(domain, f"{domain!r}: not a valid domain name ({exc})") from None
    labels = name.labels[:-1]
    if not labels or not all(_LDH_LABEL.match(label) for label in labels):
        raise NoSuchDomain(domain, f"{domain!r}: not a letter-digit-hyphen domain name")
    return name.canonicalize()


def host_text(name: dns.name.Name) -> str:
    """A DNS name as a host name for connecting and logging: A-labels, lower case, no final dot."""
    return name.canonicalize().to_text(omit_final_dot=True)
