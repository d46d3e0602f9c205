"""Mail addresses as the transport sees them (RFC 5321 §4.1.2 Mailbox, RFC 6531 for UTF-8).

An address is parsed strictly: a dot-atom or quoted-string local part, then a domain name or an
address literal. Anything a relay trick relies on (source routes, `%` and `!` routing, several `@`)
is either refused here or kept visible so that policy can refuse it. Comparison keys fold the
domain to lower case and the local part too, as Exchange resolves recipients case-insensitively.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2
MAX_PATH = 256  # RFC 5321 §4.5.3.1.3

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
_QUOTED = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"\Z')
_LABEL = re.compile(r"(?!-)[A-Za-z0-9\-\u0080-\U0010ffff]{1,63}(?<!-)\Z")


class AddressError(ValueError):
    """The text is not a valid mail address; the message says why, in words fit for a peer."""


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox: local part and domain exactly as given (domain lower-cased)."""

    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        """Case-insensitive lookup key, as Exchange matches proxy addresses."""
        return f"{self.local.lower()}@{self.domain}"

    @property
    def is_quoted(self) -> bool:
        return self.local.startswith('"')

    @property
    def is_literal(self) -> bool:
        return self.domain.startswith("[")

    @property
    def is_utf8(self) -> bool:
        return not str(self).isascii()


def parse_domain(text: str) -> str:
    """A domain name or address literal, lower-cased; trailing dots are refused (RFC 5321 §2.3.5)."""
    if not text:
        raise AddressError("empty domain")
    if len(text) > MAX_DOMAIN:
        raise AddressError("domain too long")
    if text.startswith("["):
        if not text.endswith("]"):
            raise AddressError("malformed address literal")
        inner = text[1:-1]
        try:
            if inner[:5].lower() == "ipv6:":
                ipaddress.IPv6Address(inner[5:])
            else:
                ipaddress.IPv4Address(inner)
        except ValueError:
            raise AddressError("malformed address literal") from None
        return text.lower()
    labels = text.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise AddressError("malformed domain")
    return text.lower()


def parse_address(text: str) -> Address:
    """Parse `local@domain`; raises AddressError for anything RFC 5321 does not allow."""
    if len(text) > MAX_PATH:
        raise AddressError("address too long")
    at = text.rfind("@")
    if at <= 0:
        raise AddressError("address needs a local part and a domain")
    local, domain = text[:at], text[at + 1 :]
    if len(local.encode()) > MAX_LOCAL_PART:
        raise AddressError("local part too long")
    if not (_DOT_ATOM.match(local) or _QUOTED.match(local)):
        raise AddressError("malformed local part")
    if local.startswith('"') and _DOT_ATOM.match(local[1:-1]):
        local = local[1:-1]  # RFC 5321 §4.1.2: "alice"@x is alice@x, needlessly quoted
    return Address(local, parse_domain(domain))


def domain_matches(domain: str, pattern: str) -> bool:
    """Address-space match: `*` is everything, `*.example.com` the domain and its subdomains."""
    domain, pattern = domain.lower(), pattern.lower()
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        base = pattern[2:]
        return domain == base or domain.endswith("." + base)
    return domain == pattern
