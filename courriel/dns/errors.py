"""The next-hop resolver's failures, placed in the core error tree (transient versus permanent).

Each error carries the SMTP reply a sender sees in a DSN (`public`, RFC 3463 enhanced status code,
never naming our resolvers) and the DNS detail for the log (`detail`: the server's rcode, the
names tried). The queue defers on `DnsTemporaryFailure` and fails the recipient on the others.
"""

from __future__ import annotations

from courriel.core.errors import PermanentError, TransientError


class NullMX(PermanentError):
    """The domain publishes a null MX: it accepts no mail at all (RFC 7505)."""

    code = 556
    status = "5.1.10"  # RFC 7505 §4.1 (registered by RFC 7505 §6)

    def __init__(self, domain: str) -> None:
        super().__init__(
            f"{self.code} {self.status} Recipient address has null MX",
            f"{domain}: null MX published (RFC 7505), no delivery attempted",
        )
        self.domain = domain


class NoSuchDomain(PermanentError):
    """The domain, or every mail exchanger it names, does not exist (NXDOMAIN), or cannot exist."""

    code = 550
    status = "5.4.4"  # RFC 3463 §3.5: unable to route

    def __init__(self, domain: str, detail: str) -> None:
        super().__init__(f"{self.code} {self.status} Unable to route: recipient domain not found", detail)
        self.domain = domain


class DnsTemporaryFailure(TransientError):
    """DNS gave no usable answer this time (SERVFAIL, REFUSED, timeout, network error): retry later."""

    code = 451
    status = "4.4.3"  # RFC 3463 §3.5: directory server failure

    def __init__(self, domain: str, detail: str) -> None:
        super().__init__(f"{self.code} {self.status} Temporary DNS failure for the recipient domain", detail)
        self.domain = domain
