"""The receive connector's policy for one SMTP session: the decisions the SMTP engine asks for.

Rules (research §2): a session's identity (anonymous, authenticated user, authenticated server)
gets the rights of the connector's permission groups. Without ACCEPT_ANY_RECIPIENT only accepted
domains are taken: unknown recipients of an authoritative domain get 550 5.1.10 and anything a
relay would need gets 550 5.7.54. An authenticated user without ACCEPT_ANY_SENDER may only send as
one of their own addresses (550 5.7.60). A recipient's MaxReceiveSize refuses that RCPT alone when
MAIL declared a larger SIZE (RFC 1870); after DATA the transaction is refused only when the message
is too large for every recipient (group members by their own limits), otherwise the categorizer
fails just those and they get a non-delivery report (552 5.2.3 either way). The message is handed to
a `MessageSink` and the client gets 250 only once the sink has committed it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from courriel.core.address import Address
from courriel.core.errors import PermanentError, TransientError
from courriel.core.replies import Reply
from courriel.org.model import (
    DomainType,
    MailboxDatabase,
    QuotaName,
    ReceiveConnector,
    Recipient,
    RecipientKind,
    TransportConfig,
    quota_in_force,
)
from courriel.proto.smtp import Envelope, MailParams, RcptParams, SessionInfo
from courriel.security.passwords import averify_password
from courriel.security.slots import LocalSlots, Slots
from courriel.security.throttle import LoginThrottle
from courriel.transport.categorize.resolver import Categorizer, DirectoryView, EnvelopeRecipient
from courriel.transport.receive import replies as R
from courriel.transport.receive.connectors import Right, rights
from courriel.transport.receive.headers import header_facts
from courriel.transport.service import Accepted, Submission

log = logging.getLogger(__name__)

MAX_HEADER_SIZE = 256 * 1024  # Exchange MaxHeaderSize (research §2)
TARPIT_AFTER = 3  # unknown recipients in a session before each further one is delayed
ROUTING_CHARACTERS = ("%", "!", "@", ":")  # percent hack, bang paths, quoted @, source routes


class MessageSink(Protocol):
    async def submit(self, sub: Submission) -> Accepted: ...


class PolicyDirectory(DirectoryView, Protocol):
    def recipient_by_id(self, rid: int) -> Recipient | None: ...
    def database(self, name: str) -> MailboxDatabase | None: ...


@dataclass
class ReceiveContext:
    """What every session of a server shares: the directory, the sink, counters and throttles."""

    directory: Callable[[], PolicyDirectory]
    transport_config: Callable[[], TransportConfig]
    sink: MessageSink
    throttle: LoginThrottle
    mailbox_size: Callable[[Recipient], Awaitable[int | None]]
    fqdn: str = ""  # the server's: <Postmaster> arrives as Postmaster@fqdn
    # MaxInboundConnection and MaxInboundConnectionPerSource, counted per connector (research §2);
    # in the server's shared slots they hold across its worker processes (security/slots.py).
    slots: Slots = field(default_factory=LocalSlots)


class ReceivePolicy:
    """The SmtpPolicy of one session under one receive connector."""

    def __init__(self, ctx: ReceiveContext, connector: ReceiveConnector) -> None:
        self.ctx = ctx
        self.connector = connector
        self.counted = False
        self.unknown_recipients = 0
        self.password: str | None = None  # the client's, for a front end that relays as the user
        self.declared_size = 0  # the current transaction's MAIL SIZE= (RFC 1870), 0 when not declared

    # -- identity -------------------------------------------------------------------------------
    def _user(self, info: SessionInfo) -> Recipient | None:
        if info.authenticated is None:
            return None
        return self.ctx.directory().recipient(info.authenticated)

    def _rights(self, info: SessionInfo) -> Right:
        return rights(
            self.connector,
            authenticated_user=info.authenticated is not None,
            authenticated_server=info.authenticated_server is not None,
        )

    # -- connection -----------------------------------------------------------------------------
    async def connect(self, info: SessionInfo) -> Reply | None:
        full = self.ctx.slots.take(
            self._slot_scope(),
            (
                ("all", "", self.connector.max_inbound_connection),
                ("ip", info.peer_ip, self.connector.max_inbound_connection_per_source),
            ),
        )
        if full is not None:
            return R.TOO_MANY_CONNECTIONS if full[0] == "all" else R.TOO_MANY_FROM_SOURCE
        self.counted = True
        return None

    def disconnected(self, info: SessionInfo) -> None:
        if not self.counted:
            return
        self.counted = False
        self.ctx.slots.give_back(self._slot_scope(), (("all", ""), ("ip", info.peer_ip)))

    def _slot_scope(self) -> str:
        return f"smtp:{self.connector.name.casefold()}"

    async def helo(self, info: SessionInfo, name: str) -> Reply | None:
        return None

    # -- authentication -------------------------------------------------------------------------
    async def authenticate(self, info: SessionInfo, mechanism: str, authzid: str | None, username: str, password: str) -> Reply:
        throttle = self.ctx.throttle
        if throttle.blocked(info.peer_ip, username):
            return R.AUTH_BLOCKED
        recipient = self.ctx.directory().recipient(username) if "@" in username else None
        ok = (
            recipient is not None
            and recipient.kind is RecipientKind.MAILBOX
            and recipient.password_hash is not None
            and (not authzid or authzid.lower() == username.lower())
            and await averify_password(recipient.password_hash, password)
        )
        if ok:
            throttle.record_success(info.peer_ip, username)
            self.password = password
            return R.AUTH_OK
        throttle.record_failure(info.peer_ip, username)
        await asyncio.sleep(throttle.delay_for(info.peer_ip, username))
        return R.AUTH_UNSUCCESSFUL

    # -- transaction ----------------------------------------------------------------------------
    def _size_limit(self, info: SessionInfo) -> int:
        config = self.ctx.transport_config()
        return config.max_send_size if info.authenticated else config.max_receive_size

    async def mail(self, info: SessionInfo, sender: Address | None, params: MailParams) -> Reply:
        granted = self._rights(info)
        self.declared_size = params.size or 0
        if not granted & Right.SUBMIT:
            return R.NOT_AUTHENTICATED
        if params.size and not granted & Right.BYPASS_MESSAGE_SIZE_LIMIT and params.size > self._size_limit(info):
            return R.ORG_SIZE_EXCEEDED
        user = self._user(info)
        if params.size and not granted & Right.BYPASS_MESSAGE_SIZE_LIMIT and _over_send_size(user, params.size):
            return R.SENDER_SIZE_EXCEEDED
        if user is not None and not granted & Right.ACCEPT_ANY_SENDER:
            if sender is None or sender.key not in {a.lower() for a in user.addresses}:
                return R.SEND_AS_DENIED
        elif user is None and sender is not None:
            domain = self.ctx.directory().accepted_domain(sender.domain)
            authoritative = domain is not None and domain.domain_type is DomainType.AUTHORITATIVE
            if authoritative and not granted & Right.ACCEPT_AUTHORITATIVE_DOMAIN_SENDER:
                return R.SENDER_DENIED
            if not authoritative and not granted & Right.ACCEPT_ANY_SENDER:
                return R.SENDER_DENIED
        if user is not None and await self._over_quota(user, "prohibit_send_quota"):
            return R.SEND_QUOTA_EXCEEDED
        return R.SENDER_OK

    async def _over_quota(self, recipient: Recipient, quota: QuotaName) -> bool:
        """ProhibitSendQuota or ProhibitSendReceiveQuota reached: the mailbox's own, else its database's."""
        limit = quota_in_force(recipient, self.ctx.directory().database(recipient.database or ""), quota)
        if limit is None:
            return False
        size = await self.ctx.mailbox_size(recipient)
        return size is not None and size >= limit

    def _too_big_for_all(self, envelope: Envelope, size: int) -> bool:
        """Would the categorizer fail every recipient on its MaxReceiveSize? (Then nobody gets it.)"""
        rcpts = [EnvelopeRecipient(str(addr)) for addr, _ in envelope.recipients]
        return Categorizer(self.ctx.directory(), "", self.ctx.fqdn).categorize(rcpts, size).all_too_big

    def _is_postmaster(self, rcpt: Address) -> bool:
        """RFC 5321 §4.5.1: postmaster of every domain we serve MUST be accepted, with no relay right."""
        if rcpt.local.lower() != "postmaster":
            return False
        ours = {self.ctx.fqdn.lower(), (self.connector.fqdn or "").lower()} - {""}
        return rcpt.domain in ours or self.ctx.directory().accepted_domain(rcpt.domain) is not None

    async def rcpt(self, info: SessionInfo, rcpt: Address, params: RcptParams) -> Reply:
        if self._is_postmaster(rcpt):
            return R.RECIPIENT_OK
        granted = self._rights(info)
        relay = bool(granted & Right.ACCEPT_ANY_RECIPIENT)
        local = rcpt.local.strip('"') if rcpt.is_quoted else rcpt.local
        if not relay and (rcpt.is_literal or any(c in local for c in ROUTING_CHARACTERS)):
            return R.ROUTING_DENIED
        directory = self.ctx.directory()
        domain = directory.accepted_domain(rcpt.domain)
        if domain is None:
            return R.RECIPIENT_OK if relay else R.RELAY_DENIED
        recipient = directory.recipient(str(rcpt))
        if recipient is None:
            if domain.domain_type is not DomainType.AUTHORITATIVE:
                return R.RECIPIENT_OK  # internal or external relay domain: routed on
            self.unknown_recipients += 1
            if self.unknown_recipients > TARPIT_AFTER:
                await asyncio.sleep(self.connector.tarpit_interval)
            return R.UNKNOWN_RECIPIENT
        limit = recipient.max_receive_size
        if limit is not None and self.declared_size > limit and not granted & Right.BYPASS_MESSAGE_SIZE_LIMIT:
            return R.RECIPIENT_SIZE_EXCEEDED
        if recipient.kind is RecipientKind.MAILBOX and await self._over_quota(recipient, "prohibit_send_receive_quota"):
            return R.MAILBOX_FULL
        return R.RECIPIENT_OK

    async def data(self, info: SessionInfo, envelope: Envelope, message: bytes) -> Reply:
        granted = self._rights(info)
        if not granted & Right.BYPASS_MESSAGE_SIZE_LIMIT:
            if len(message) > self._size_limit(info):
                return R.ORG_SIZE_EXCEEDED
            if _over_send_size(self._user(info), len(message)):
                return R.SENDER_SIZE_EXCEEDED
            if self._too_big_for_all(envelope, len(message)):
                return R.RECIPIENT_SIZE_EXCEEDED
        facts = header_facts(message)
        if facts.header_size > MAX_HEADER_SIZE:
            return R.HEADER_TOO_BIG
        if facts.received_count >= min(self.connector.max_hop_count, self.ctx.transport_config().max_hop_count):
            return R.HOP_COUNT_EXCEEDED
        params = envelope.params
        sub = Submission(
            sender=str(envelope.sender) if envelope.sender else "",
            recipients=[
                EnvelopeRecipient(
                    str(addr),
                    notify=",".join(rp.notify) if rp.notify else None,
                    orcpt=f"{rp.orcpt[0]};{rp.orcpt[1]}" if rp.orcpt else None,
                )
                for addr, rp in envelope.recipients
            ],
            data=message,
            client_ip=info.peer_ip,
            helo=info.helo,
            connector=self.connector.name,
            auth_user=info.authenticated,
            auth_server=info.authenticated_server,
            auth_password=self.password if info.authenticated else None,
            tls_version="TLS" if info.tls_active else None,
            esmtp=info.esmtp,
            smtputf8=params.smtputf8,
            is_submission=info.authenticated is not None,
            mail_params={"ret": params.ret, "envid": params.envid, "body": params.body, "smtputf8": params.smtputf8},
        )
        try:
            accepted = await self.ctx.sink.submit(sub)
        except TransientError as exc:
            log.warning("%s: %s", self.connector.name, exc.detail)
            return exc.reply or R.STORE_FAILED
        except PermanentError as exc:  # a next hop's refusal, passed on by a front end
            log.info("%s: %s", self.connector.name, exc.detail)
            return exc.reply or Reply(554, "5.0.0", exc.public)
        return R.queued(accepted.message_id, accepted.queue_id)


def _over_send_size(user: Recipient | None, size: int) -> bool:
    """The authenticated sender's own MaxSendSize (Set-Mailbox), under the organization's."""
    return user is not None and user.max_send_size is not None and size > user.max_send_size
