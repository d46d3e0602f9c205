"""What one SMTP session may offer and accept: the receive connector's settings, as plain values.

The server wrapper builds one `SessionSettings` per connection from the receive connector that
owns the listener (so an administrator's change applies to the next connection), and the engine
reads nothing else. Limits follow RFC 5321 §4.5.3 and the Exchange 2013 receive connector defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

COMMAND_LINE_LIMIT = 512  # RFC 5321 §4.5.3.1.4, CRLF included
AUTH_LINE_LIMIT = 12288  # RFC 4954 §4: AUTH lines and SASL responses may be this long
SASL_MECHANISMS = ("PLAIN", "LOGIN")  # what courriel.proto.smtp.auth implements


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Settings of one SMTP session. Zero means "no limit" for the limits that say so."""

    fqdn: str
    """Our name in the banner, the EHLO reply and the Received header (Exchange `Fqdn`)."""
    banner: str | None = None
    """Text of the 220 greeting; None gives `<fqdn> Courriel ESMTP MAIL service ready at <date>`."""
    connector: str = "Default"
    """Name of the receive connector, passed to the policy and the logs."""
    max_message_size: int = 36 * 1024 * 1024
    """Largest message in octets, 0 = unlimited (RFC 1870). Exchange's frontend default: 36 MB."""
    max_recipients: int = 200
    """RCPT commands accepted per message; more get 452 4.5.3 (RFC 5321 §4.5.3.1.10)."""
    max_line_length: int = COMMAND_LINE_LIMIT
    """Longest command line, CRLF included; MAIL/RCPT/AUTH get the extensions' extra room."""
    max_text_line: int = 10000
    """Longest line of a text message body (without CRLF); 0 = unlimited. RFC 5321 says 998 but
    real mail breaks it, so we are as generous as Postfix and refuse only clear abuse."""
    max_pending_input: int = 256 * 1024
    """Input buffered while a decision is pending before the session gives up with 421."""
    tls_available: bool = False
    """A certificate is configured: STARTTLS is offered (RFC 3207)."""
    tls_active: bool = False
    """The connection is already encrypted (implicit TLS, e.g. port 465)."""
    require_tls: bool = False
    """Refuse everything but EHLO/HELO/NOOP/QUIT/RSET/STARTTLS before TLS (RFC 3207 §4)."""
    auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")
    """SASL mechanisms offered (RFC 4954); empty disables AUTH."""
    auth_requires_tls: bool = True
    """AUTH is neither advertised nor accepted before TLS (Exchange `BasicAuthRequireTLS`)."""
    auth_required: bool = False
    """MAIL is refused until the client has authenticated (submission connectors)."""
    max_protocol_errors: int = 5
    """Bad commands tolerated before 421 and disconnect; 0 = unlimited."""
    max_logon_failures: int = 3
    """Failed AUTH exchanges tolerated before 421 and disconnect; 0 = unlimited."""
    pipelining: bool = True  # RFC 2920
    chunking: bool = True  # RFC 3030: BDAT and BINARYMIME
    smtputf8: bool = True  # RFC 6531
    dsn: bool = True  # RFC 3461

    def __post_init__(self) -> None:
        if not self.fqdn:
            raise ValueError("fqdn must not be empty")
        if self.max_line_length < COMMAND_LINE_LIMIT:
            raise ValueError(f"max_line_length must be at least {COMMAND_LINE_LIMIT} (RFC 5321 §4.5.3.1.4)")
        if self.max_recipients < 1:
            raise ValueError("max_recipients must be at least 1")
        for name in ("max_message_size", "max_text_line", "max_protocol_errors", "max_logon_failures"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_pending_input < self.max_line_length:
            raise ValueError("max_pending_input must hold at least one command line")
        mechanisms = tuple(m.upper() for m in self.auth_mechanisms)
        unknown = set(mechanisms) - set(SASL_MECHANISMS)
        if unknown:
            raise ValueError(f"unsupported SASL mechanisms: {', '.join(sorted(unknown))}")
        object.__setattr__(self, "auth_mechanisms", mechanisms)
