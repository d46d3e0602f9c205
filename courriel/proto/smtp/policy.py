"""The receive policy seam: what the SMTP server asks at each step of a session.

The asyncio server (`courriel.services.smtp_server`) turns each `Decide*` action of the engine
into a call on an `SmtpPolicy`, made for one connection by the connector's policy factory, and
resolves the engine with the reply. The engine has already enforced the protocol (syntax,
sequence, advertised extensions, limits); the policy decides on the merits: connection
filtering, relay rules, recipients, credentials, and committing the message (a 250 only once
it is durable). Raising is allowed: the server answers 451 4.3.0 and logs the traceback.
"""

from __future__ import annotations

from typing import Protocol

from courriel.core.address import Address
from courriel.core.replies import Reply

from .events import Envelope, SessionInfo
from .params import MailParams, RcptParams


class SmtpPolicy(Protocol):
    """Decisions of one SMTP session; each returns the reply to send."""

    async def connect(self, info: SessionInfo) -> Reply | None:
        """None (or a 220 reply) accepts; 554 refuses politely; 421 drops the connection."""
        ...

    async def helo(self, info: SessionInfo, name: str) -> Reply | None:
        """None accepts the EHLO/HELO name with the standard reply."""
        ...

    async def mail(self, info: SessionInfo, sender: Address | None, params: MailParams) -> Reply:
        """MAIL FROM; `sender` None is the null reverse-path `<>`."""
        ...

    async def rcpt(self, info: SessionInfo, rcpt: Address, params: RcptParams) -> Reply:
        """RCPT TO: a positive reply adds the recipient to the envelope."""
        ...

    async def authenticate(
        self, info: SessionInfo, mechanism: str, authzid: str | None, username: str, password: str
    ) -> Reply:
        """AUTH: a positive reply (235 2.7.0) authenticates the session as `username`."""
        ...

    async def data(self, info: SessionInfo, envelope: Envelope, message: bytes) -> Reply:
        """The whole message: 250 only once it is durable; the transaction ends either way."""
        ...

    def disconnected(self, info: SessionInfo) -> None:
        """The connection is gone (called once, whatever the reason)."""
        ...
