"""Logins to IMAP4, POP3 and HTTP against the organization directory, and the connection limits.

Shared by the IMAP4 and POP3 back ends and the Client Access front ends (it has no mailbox import). What a
login must pass, in order (research/exchange2013-facts.md §3):
- the throttle (security/throttle.py): too many recent failures from this address or for this
  name and the password is not even checked;
- the password (argon2id, in a thread; an unknown name costs the same time as a known one, and
  a pair that verified lately is remembered: passwords.py `VerifiedCache`);
- the recipient is one the protocol logs in (`PasswordLogin.candidate`: a mailbox; for HTTP,
  clientaccess/http.py, a mailbox in a database); any other name fails as a wrong password does;
- the admin's switches (`enabled`): for IMAP4 and POP3 (`DirectoryLogin`) the mailbox has a
  database and is enabled for the protocol (Set-CASMailbox -ImapEnabled/-PopEnabled), and the
  protocol is enabled (Set-ImapSettings/Set-PopSettings -Enabled).
Every refusal looks the same to the client (RFC 1939 §13, RFC 9051 §11.3: do not tell which names
exist) and counts as a failure; the answer waits `delay_for` seconds.

`SessionCounter` enforces MaxConnections, MaxConnectionFromSingleIP and MaxConnectionsPerUser,
across the worker processes of a server when given the server's shared slots.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from courriel.org.model import LoginType, ProtocolSettings, Recipient, RecipientKind
from courriel.org.snapshot import DirectorySnapshot
from courriel.security.passwords import averify_password
from courriel.security.slots import LocalSlots, Slots
from courriel.security.throttle import LoginThrottle

log = logging.getLogger(__name__)

Protocol = Literal["imap", "pop"]


def protocol_settings(snapshot: DirectorySnapshot, protocol: Protocol) -> ProtocolSettings:
    return snapshot.imap_settings if protocol == "imap" else snapshot.pop_settings


def plaintext_allowed(settings: ProtocolSettings) -> bool:
    """LoginType: SecureLogin (the default) takes credentials only once TLS is active;
    PlainTextLogin and PlainTextAuthentication take them in the clear too."""
    return settings.login_type is not LoginType.SECURE_LOGIN


class PasswordLogin:
    """Checks a name and password against the current directory snapshot, in the order every
    protocol shares (see the module docstring).

    What a protocol adds: which recipients it logs in (`candidate`, asked before the password;
    any other name is refused as a wrong password is, at the same cost) and what an admin may
    have switched off for them (`enabled`, asked once the password is right, and logged as
    such). `protocol` names it in the log.
    """

    def __init__(
        self,
        snapshot: Callable[[], DirectorySnapshot],
        throttle: LoginThrottle,
        protocol: str,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._snapshot = snapshot
        self._throttle = throttle
        self.protocol = protocol
        self._sleep = sleep

    def find(self, username: str) -> Recipient | None:
        """The recipient a login name stands for: any of its addresses, or a bare local part
        in the organization's default domain (what Exchange accepts besides the UPN)."""
        snapshot = self._snapshot()
        name = username.strip()
        found = snapshot.recipient(name)
        if found is None and "@" not in name:
            default = snapshot.default_domain()
            if default is not None:
                found = snapshot.recipient(f"{name}@{default.name}")
        return found

    def candidate(self, recipient: Recipient) -> bool:
        """Whether the protocol logs this recipient in at all: a mailbox."""
        return recipient.kind is RecipientKind.MAILBOX

    def enabled(self, mailbox: Recipient) -> bool:
        """Whether the admin's switches let this mailbox in; there are none by default."""
        return True

    async def verify(self, ip: str, username: str, password: str) -> Recipient | None:
        """The mailbox these credentials open for this protocol, or None (after the delay)."""
        if self._throttle.blocked(ip, username):
            log.info("%s login for %r from %s refused: throttled", self.protocol, username, ip)
            await self._fail(ip, username, record=False)
            return None
        recipient = self.find(username)
        mailbox = recipient if recipient is not None and self.candidate(recipient) else None
        ok = await averify_password(mailbox.password_hash if mailbox else None, password)
        if not ok or mailbox is None:
            log.info("%s login for %r from %s failed: bad credentials", self.protocol, username, ip)
            await self._fail(ip, username)
            return None
        if not self.enabled(mailbox):
            log.info("%s login for %r from %s refused: protocol disabled", self.protocol, username, ip)
            await self._fail(ip, username)
            return None
        self._throttle.record_success(ip, username)
        return mailbox

    async def _fail(self, ip: str, username: str, *, record: bool = True) -> None:
        """A refused login: counted (unless `record` is False: a throttled attempt is not counted
        again), then the throttle's delay before the answer."""
        if record:
            self._throttle.record_failure(ip, username)
        delay = self._throttle.delay_for(ip, username)
        if delay > 0:
            await self._sleep(delay)


class DirectoryLogin(PasswordLogin):
    """IMAP4 or POP3 logins: the mailbox must have a database and be enabled for the protocol,
    and the protocol be enabled (`settings`, read from the directory snapshot of the moment)."""

    protocol: Protocol  # "imap" or "pop": which switches `enabled` reads

    def settings(self) -> ProtocolSettings:
        return protocol_settings(self._snapshot(), self.protocol)

    def enabled(self, mailbox: Recipient) -> bool:
        """Set-CASMailbox -ImapEnabled/-PopEnabled, Set-ImapSettings/-PopSettings -Enabled, and a
        database to open the mailbox in."""
        switched_on = mailbox.imap_enabled if self.protocol == "imap" else mailbox.pop_enabled
        return (
            switched_on
            and self.settings().enabled
            and mailbox.guid is not None
            and mailbox.database is not None
        )


class SessionCounter:
    """Open connections of one service, per client address, and logged-in sessions per user.

    The counts live in `slots` under `scope` (the service's name): this process's own by default,
    the server's shared slots (security/slots.py) where the limits must hold across workers.
    """

    def __init__(self, slots: Slots | None = None, scope: str = "") -> None:
        self._slots: Slots = slots if slots is not None else LocalSlots()
        self._scope = scope

    def share(self, slots: Slots, scope: str) -> None:
        """Count in `slots` from now on; for the composition root, before the first connection
        (the services build their counter themselves and hand it to their login paths)."""
        if isinstance(self._slots, LocalSlots) and len(self._slots):
            raise RuntimeError("a session counter in use cannot move to other slots")
        self._slots, self._scope = slots, scope

    @property
    def total(self) -> int:
        return self._slots.held(self._scope, "all", "")

    def admit(self, ip: str, settings: ProtocolSettings, *, per_ip: bool = True) -> bool:
        """Count a new connection unless it is over MaxConnections or (with `per_ip`)
        MaxConnectionFromSingleIP; the caller must `leave(ip)` once admitted."""
        claims = (
            ("all", "", settings.max_connections),
            ("ip", ip, settings.max_connection_from_single_ip if per_ip else None),
        )
        return self._slots.take(self._scope, claims) is None

    def leave(self, ip: str) -> None:
        self._slots.give_back(self._scope, (("all", ""), ("ip", ip)))

    def enter_user(self, key: str, settings: ProtocolSettings) -> bool:
        """Count a logged-in session unless the user has MaxConnectionsPerUser already."""
        return self._slots.take(self._scope, (("user", key, settings.max_connections_per_user),)) is None

    def leave_user(self, key: str) -> None:
        self._slots.give_back(self._scope, (("user", key),))

    def sessions_of(self, key: str) -> int:
        return self._slots.held(self._scope, "user", key)
