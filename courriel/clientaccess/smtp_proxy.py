"""Front End Transport (DESIGN.md §2): the message sink of a Client Access server's SMTP connectors.

Stateless, as Exchange's front end is (research/exchange2013-facts.md §0): a transaction that
the receive connector's policy accepted is relayed at once, from memory, and the client gets the
next hop's answer — 250 only once the next hop said 250; 4xx when no next hop answers (never a
5xx of our making, never a silent loss); a next hop's 5xx passed on.

- "Default Frontend" (25): to the Transport service ("Default <server>") of a Mailbox server that
  holds a recipient's database, else any other Mailbox server of the site (it routes the rest on).
- "Client Frontend" (587): to "Client Proxy <server>" on the authenticated user's Mailbox server
  (then the others of the site), authenticated there as the user with the credentials the client
  gave us (AUTH PLAIN, only over TLS), so the back end applies the user's own rights.
- "Outbound Proxy Frontend" (717): to the Internet, through the send connector the sending
  Mailbox server would have used (`smtp_outbound.py`).

Sessions to Mailbox servers always use STARTTLS, the peer checked against the organization CA:
with our organization certificate (the back end then knows a server of ours relays, and the
header firewall stamps below were set by us), except when relaying as a user, where showing it
would give the session a server's rights instead of the user's.

If a next hop took the message for some recipients and refused others, the client still gets
250 (the message is on its way) and the sender gets a non-delivery report for the others,
handed to a Mailbox server like any message — the front end has no queue.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from courriel.clientaccess.locator import BackendLocator, Endpoint
from courriel.clientaccess.smtp_outbound import OutboundProxy
from courriel.clientaccess.smtp_relay import Hop, HopFailed, Relay, Relayed, Transaction, as_transient
from courriel.core.errors import PermanentError, TransientError
from courriel.core.ids import new_id, new_message_id
from courriel.core.ports import CLIENT_PROXY, DEFAULT_TRANSPORT, OUTBOUND_PROXY_FRONTEND
from courriel.core.replies import Reply
from courriel.org.model import Recipient
from courriel.transport.categorize.resolver import EnvelopeRecipient
from courriel.transport.deliver.client import ProtocolLogger, SmtpClient
from courriel.transport.deliver.esmtp import describe
from courriel.transport.deliver.organization import INTRA_ORG
from courriel.transport.deliver.session import Endpoint as SessionEndpoint
from courriel.transport.deliver.session import SessionFailed, SessionOpener, TlsContexts
from courriel.transport.dsn import Notice, RecipientNotice, build_dsn, wants_notice
from courriel.transport.firewall import admit_transaction, strip_internal
from courriel.transport.receive.headers import header_facts, trace

log = logging.getLogger(__name__)
BACKEND_TIMEOUT = 120.0  # per reply; the back end's commit is an fsync'ed group commit
# Between our own servers these MAIL replies mean "you are not recognized here (yet)": the
# directory change that would admit us has not reached that server. Try another, then 4xx.
NOT_RECOGNIZED = frozenset({530, 535})
UNAVAILABLE = Reply(451, "4.4.0", "No Mailbox server could take the message now; try again later")
_INTERNAL_ID = re.compile(r"\[InternalId=([^\]\s]+)\]")
_MESSAGE_ID = re.compile(r"^(<[^>\s]+>)")


class BackEndDeferred(TransientError):
    """No next hop took the message: the client gets `reply` (4xx) and tries again later."""

    def __init__(self, reply: Reply, detail: str | None = None) -> None:
        reply = as_transient(reply)
        super().__init__(describe(reply), detail, reply=reply)


class BackEndRefused(PermanentError):
    """The next hop refused the message: its 5xx is the client's answer."""

    def __init__(self, reply: Reply, detail: str | None = None) -> None:
        super().__init__(describe(reply), detail, reply=reply)


@dataclass(frozen=True, slots=True)
class Handed:
    """The answer for the client: the next hop's ids (its queue id and Message-ID) when it gave them."""

    queue_id: str
    message_id: str | None
    reply: Reply


class FrontEndDirectory(Protocol):
    def recipient(self, address: str) -> Recipient | None: ...


@dataclass(frozen=True, slots=True)
class Part:
    """A transaction of our own making: a share of the client's recipients, or a report."""

    sender: str
    recipients: Sequence[EnvelopeRecipient]
    data: bytes
    client_ip: str
    helo: str | None = None
    connector: str | None = None
    auth_user: str | None = None
    auth_server: str | None = None
    tls_version: str | None = None
    esmtp: bool = True
    smtputf8: bool = False
    mail_params: Mapping[str, Any] = field(default_factory=dict)
    auth_password: str | None = field(default=None, repr=False)  # never kept: a Part is not relayed as a user

    @classmethod
    def of(cls, tx: Transaction, recipients: Sequence[EnvelopeRecipient]) -> Part:
        return cls(
            tx.sender, recipients, tx.data, tx.client_ip, tx.helo, tx.connector, tx.auth_user,
            tx.auth_server, tx.tls_version, tx.esmtp, tx.smtputf8, tx.mail_params,
        )


class FrontEndTransport:
    def __init__(
        self,
        *,
        server: str,
        fqdn: str,
        locator: BackendLocator,
        directory: Callable[[], FrontEndDirectory],
        backend_tls: Callable[[], ssl.SSLContext],
        user_tls: Callable[[], ssl.SSLContext] | None = None,
        outbound: OutboundProxy | None = None,
        relay: Relay | None = None,
        protocol_log: Callable[[], ProtocolLogger | None] = lambda: None,
        timeout: float = BACKEND_TIMEOUT,
    ) -> None:
        """`backend_tls`: the client context for Mailbox servers (the organization certificate);
        `user_tls`: for relaying as a user, without our certificate — with it the back end would
        grant a server's rights and skip the user's (send-as) checks;
        `protocol_log`: a logger per session to a Mailbox server, or None."""
        self.server = server
        self.fqdn = fqdn
        self.locator = locator
        self.directory = directory
        self.backend_tls = backend_tls
        self.user_tls = user_tls or backend_tls
        self.outbound = outbound
        self.relay = relay or Relay()
        self.protocol_log = protocol_log
        self.timeout = timeout
        self._contexts = TlsContexts()  # unused: every Mailbox server session gets its own context
        self.relayed = 0  # transactions answered 250 since start (benches, metrics)

    # -- the sink ------------------------------------------------------------------------------

    async def submit(self, tx: Transaction) -> Handed:
        """Relay one transaction; raises BackEndDeferred (4xx) or BackEndRefused (5xx)."""
        stamp = new_id()
        if self.is_outbound_proxy(tx.connector):  # leaving the organization
            data = trace(tx, by=self.fqdn, queue_id=stamp) + strip_internal(tx.data)
            result = await self._outbound(tx, data)
        else:
            # the header firewall at the organization's door: the Mailbox server trusts what we relay
            admitted = admit_transaction(tx, source=self.fqdn, network_message_id=stamp)
            data = trace(tx, by=self.fqdn, queue_id=stamp) + admitted
            result = await self.relay.relay(tx, data, self._backend_hops(tx))
        return await self._answer(tx, data, result, stamp)

    async def stop(self) -> None:
        """Close the sessions kept for reuse (QUIT)."""
        await self.relay.connections.close()

    def is_outbound_proxy(self, connector: str | None) -> bool:
        """Is this the server's "Outbound Proxy Frontend" (mail leaving for the Internet)?"""
        name = OUTBOUND_PROXY_FRONTEND.format(server=self.server)
        return connector is not None and connector.casefold() == name.casefold()

    async def _answer(self, tx: Transaction, data: bytes, result: Relayed, stamp: str) -> Handed:
        unsettled = result.refused + [(r, result.last_error) for r in result.pending]
        if not result.accepted:
            if result.pending:
                raise BackEndDeferred(result.last_error, f"{len(result.pending)} recipient(s) pending: {describe(result.last_error)}")
            raise BackEndRefused(result.refused[0][1], f"refused by the next hop: {describe(result.refused[0][1])}")
        if unsettled:
            await self._report(tx, data, unsettled)
        assert result.accepted_reply is not None
        self.relayed += 1
        text = result.accepted_reply.text
        queue_id = _INTERNAL_ID.search(text)
        message_id = _MESSAGE_ID.match(text)
        log.info("%s: relayed %s to %s: %s", tx.connector, stamp, result.accepted_by, describe(result.accepted_reply))
        return Handed(
            queue_id.group(1) if queue_id else stamp,
            message_id.group(1) if message_id else header_facts(tx.data).message_id,
            result.accepted_reply,
        )

    # -- Mailbox servers -----------------------------------------------------------------------

    def _backend_hops(self, tx: Transaction) -> list[Hop]:
        view = self.directory()
        if tx.auth_user is not None:
            password = tx.auth_password
            if password is None:  # the receive side did not keep them: no back end would take it as the user's
                log.error("%s: no credentials kept for %s; the submission is deferred", tx.connector, tx.auth_user)
                return []
            credentials = (tx.auth_user, password)
            endpoints = self.locator.smtp_endpoints([view.recipient(tx.auth_user)], CLIENT_PROXY)
            return [self._backend_hop(e, credentials) for e in endpoints]
        recipients = [view.recipient(r.address) for r in tx.recipients]
        return [self._backend_hop(e) for e in self.locator.smtp_endpoints(recipients, DEFAULT_TRANSPORT)]

    def _backend_hop(self, endpoint: Endpoint, credentials: tuple[str, str] | None = None) -> Hop:
        """A Mailbox server's connector: STARTTLS with the organization certificate, required;
        AUTH as the user (only after TLS) when relaying a submission."""
        connector = dataclasses.replace(INTRA_ORG, connection_inactivity_timeout=self.timeout)
        if credentials is not None:
            connector = dataclasses.replace(
                connector,
                smart_host_auth_mechanism="BasicAuthRequireTLS",
                auth_username=credentials[0],
                auth_password=credentials[1],
            )
        logger = self.protocol_log
        tls = self.backend_tls() if credentials is None else self.user_tls()
        opener = SessionOpener(connector, self.fqdn, self._contexts, lambda _e: logger(), tls)
        target = SessionEndpoint(endpoint.server, endpoint.host, endpoint.port, endpoint.source)
        label = f"{endpoint.server}[{endpoint.host}]:{endpoint.port}"

        async def open_session() -> SmtpClient:
            if endpoint.implicit_tls:  # our SMTP client speaks STARTTLS only (deliver/client.py)
                raise HopFailed(_unavailable(f"{label}: its connector wants implicit TLS"))
            try:
                return await opener.open(target)
            except SessionFailed as exc:
                raise HopFailed(_unavailable(f"{label}: {exc.error}")) from exc

        user = f":{credentials[0].casefold()}" if credentials else ""
        return Hop(label, f"mbx:{endpoint.host}:{endpoint.port}{user}", open_session, NOT_RECOGNIZED)

    # -- the Internet (Outbound Proxy Frontend) ------------------------------------------------

    async def _outbound(self, tx: Transaction, data: bytes) -> Relayed:
        """Recipients of one domain share a next hop (the Mailbox server sends them so)."""
        total = Relayed()
        if self.outbound is None:
            total.pending, total.last_error = list(tx.recipients), UNAVAILABLE
            return total
        domains: dict[str, list[EnvelopeRecipient]] = {}
        for r in tx.recipients:
            domains.setdefault(r.address.rsplit("@", 1)[-1].lower(), []).append(r)
        for domain, rcpts in domains.items():
            plan = await self.outbound.hops(domain, tx.client_ip, len(data))
            if isinstance(plan, tuple):
                permanent, reply = plan
                if permanent:
                    total.refused += [(r, reply) for r in rcpts]
                else:
                    total.pending += rcpts
                    total.last_error = reply
                continue
            _merge(total, await self.relay.relay(Part.of(tx, rcpts), data, plan))
        return total

    # -- non-delivery reports ------------------------------------------------------------------

    async def _report(self, tx: Transaction, data: bytes, unsettled: list[tuple[EnvelopeRecipient, Reply]]) -> None:
        """The sender learns of the recipients the next hop did not take (RFC 3464), through a
        Mailbox server; if none takes the report, the client must try the whole message again."""
        now = time.time()
        wanted = [(r, reply) for r, reply in unsettled if wants_notice(tx.sender, r.notify, "failed")]
        log.info("%s: not delivered to %s", tx.connector, ", ".join(f"{r.address} ({describe(e)})" for r, e in unsettled))
        if not wanted:
            return
        notice = Notice(
            reporting_mta=self.fqdn,
            to=tx.sender,
            arrival=now,
            original=data,
            recipients=[
                RecipientNotice(r.address, "failed", describe(reply), r.orcpt, last_attempt=now) for r, reply in wanted
            ],
            envid=tx.mail_params.get("envid"),
            ret=tx.mail_params.get("ret"),
        )
        message = build_dsn(notice, now=now, message_id=new_message_id(self.fqdn))
        report = Part("", [EnvelopeRecipient(tx.sender, notify="NEVER")], message, tx.client_ip, self.fqdn, tx.connector)
        hops = [self._backend_hop(e) for e in self.locator.smtp_endpoints([self.directory().recipient(tx.sender)], DEFAULT_TRANSPORT)]
        result = await self.relay.relay(report, message, hops)
        if not result.accepted:
            reply = result.last_error if result.pending else result.refused[0][1]
            raise BackEndDeferred(UNAVAILABLE, f"the non-delivery report could not be handed on: {describe(reply)}")


def _unavailable(detail: str) -> Reply:
    """The client hears only that no Mailbox server could take the message; the log gets why."""
    log.warning("Mailbox server unusable: %s", detail)
    return UNAVAILABLE


def _merge(total: Relayed, part: Relayed) -> None:
    total.accepted += part.accepted
    total.refused += part.refused
    total.pending += part.pending
    if part.pending:
        total.last_error = part.last_error
    if total.accepted_reply is None and part.accepted_reply is not None:
        total.accepted_reply, total.accepted_by = part.accepted_reply, part.accepted_by
