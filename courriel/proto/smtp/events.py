"""What the SMTP engine hands to the I/O layer: actions to perform and decisions to take.

`SmtpSession` never touches a socket. Each call returns a list of actions, in order: bytes to
send, a TLS upgrade to perform, the connection to close, or one `Decide*` question for the
receive policy. While a decision is pending the engine buffers further input (that is how
PIPELINING works, RFC 2920) and the I/O layer answers with `SmtpSession.resolve(reply)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from courriel.core.address import Address

from .params import MailParams, RcptParams


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A snapshot of the session for the policy and the logs."""

    session_id: str
    connector: str
    peer_ip: str
    peer_port: int
    helo: str | None
    """The EHLO/HELO argument, None before it (and again after STARTTLS, RFC 3207 §4.2)."""
    esmtp: bool
    """The client said EHLO (for the `with ESMTP[S][A]` clause of Received, RFC 3848)."""
    tls_active: bool
    authenticated: str | None
    """The SASL authentication identity once AUTH succeeded."""
    authenticated_server: str | None = None
    """The organization server the TLS client certificate proved (the ExchangeServer mechanism)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One mail transaction: MAIL FROM and the accepted RCPT TO, with their parameters."""

    sender: Address | None
    """None is the null reverse-path `<>` of delivery status notifications."""
    params: MailParams
    recipients: tuple[tuple[Address, RcptParams], ...]


@dataclass(frozen=True, slots=True)
class Send:
    """Write these bytes to the peer (one or more complete replies)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StartTLS:
    """Upgrade the connection now, then call `tls_started()` (RFC 3207)."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection once everything before this action has been written."""


@dataclass(frozen=True, slots=True)
class Trace:
    """A client command line for the protocol log (only when tracing); credentials are masked."""

    line: str


@dataclass(frozen=True, slots=True)
class DecideConnect:
    """A client connected: accept (None or a 220 reply) or refuse (554 or 421)."""

    info: SessionInfo


@dataclass(frozen=True, slots=True)
class DecideHelo:
    """EHLO/HELO `name`: accept (None) or refuse with a reply."""

    info: SessionInfo
    name: str


@dataclass(frozen=True, slots=True)
class DecideMail:
    """MAIL FROM: a positive reply opens the transaction."""

    info: SessionInfo
    sender: Address | None
    params: MailParams


@dataclass(frozen=True, slots=True)
class DecideRcpt:
    """RCPT TO: a positive reply adds the recipient to the envelope."""

    info: SessionInfo
    rcpt: Address
    params: RcptParams


@dataclass(frozen=True, slots=True)
class DecideAuth:
    """Check credentials: a positive reply authenticates the session as `username`."""

    info: SessionInfo
    mechanism: str
    authzid: str | None
    """The identity to act as (SASL PLAIN authzid, RFC 4616 §2), None when not given."""
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class DecideData:
    """The complete message: the reply is sent and the transaction ends, whatever it is."""

    info: SessionInfo
    envelope: Envelope
    message: bytes


Decision = DecideConnect | DecideHelo | DecideMail | DecideRcpt | DecideAuth | DecideData
Action = Send | StartTLS | Close | Trace | Decision
