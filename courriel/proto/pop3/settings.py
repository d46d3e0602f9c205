"""Per-listener POP3 settings, filled by the service from the configuration schema.

`login_allowed_without_tls` maps Exchange's `Set-PopSettings -LoginType`: SecureLogin (the
default) gives False, PlainTextLogin and PlainTextAuthentication give True.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pop3Settings:
    banner: str = "Courriel POP3 service is ready."
    tls_available: bool = False  # STLS is offered (a certificate is configured)
    tls_active: bool = False  # the connection is TLS from the start (port 995)
    login_allowed_without_tls: bool = False
    implementation: str = "Courriel"
    # RFC 2449 §4 limits command lines to 255 octets with CRLF; we accept more so that a SASL
    # response for a long name and password fits (the line limit then bounds that too).
    max_line: int = 1024
    max_failures: int = 3  # failed logins before the connection is closed
    max_errors: int = 10  # bad commands before the connection is closed
    max_pipelined: int = 64 * 1024  # octets buffered while a decision is pending

    def __post_init__(self) -> None:
        if self.max_line < 64 or self.max_failures < 1 or self.max_errors < 1:
            raise ValueError("POP3 limits are too small")
        if self.max_pipelined < self.max_line:
            raise ValueError("max_pipelined must hold at least one line")
