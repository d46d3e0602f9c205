"""One SMTP transaction relayed, at once and in memory, to the first next hop that takes it.

The Front End Transport service never queues (DESIGN.md §2): what the client sent is held in
memory (bounded by the receive connector's MaxMessageSize) while this module tries the next hops
in order — Mailbox servers' Transport service, or the Internet hosts of a send connector — with
our pipelining SMTP client (`transport/deliver/client.py`) and the wire rules of
`transport/deliver/esmtp.py`. Per recipient the outcome is the next hop's: accepted (2xx, after
the final reply to the content), refused (5xx) or still pending (4xx, no answer, lost
connection), and a pending recipient is offered to the next hop in the list.

A connection lost after the content was sent (RFC 1047's window) ends the attempt: the hop may
hold the message, so it is not offered to another one; the client is then told to try again.
Sessions are kept for the next transaction to the same hop (`deliver/connections.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from courriel.core.replies import Reply
from courriel.transport.categorize.resolver import EnvelopeRecipient
from courriel.transport.deliver.client import ConnectionLost, Exchange, SmtpClient
from courriel.transport.deliver.connections import Connections
from courriel.transport.deliver.esmtp import (
    Needs,
    ReplyReader,
    dot_stuffed,
    mail_command,
    needs_of,
    rcpt_command,
    refusal,
)
from courriel.transport.receive.headers import ReceivedTransaction

log = logging.getLogger(__name__)
NO_NEXT_HOP = Reply(451, "4.4.0", "No server could take the message now; try again later")


class Transaction(ReceivedTransaction, Protocol):
    """What the receive side hands over (transport/service.py's Submission has all of it)."""

    @property
    def sender(self) -> str: ...
    @property
    def recipients(self) -> Sequence[EnvelopeRecipient]: ...
    @property
    def connector(self) -> str | None: ...
    @property
    def auth_password(self) -> str | None: ...  # kept by the receive side only for relaying as the user
    @property
    def mail_params(self) -> Mapping[str, Any]: ...


def parse_reply(text: str) -> Reply:
    """A reply-style line of ours ("451 4.4.1 Could not connect …") as a Reply."""
    try:
        replies = ReplyReader().feed(text.strip().encode("utf-8", "replace") + b"\r\n")
    except Exception:
        replies = []
    return replies[0] if replies else Reply(451, "4.4.0", text.strip()[:400] or "Temporary failure")


class HopFailed(Exception):
    """This next hop cannot be used now (connect, greeting, TLS, AUTH); try the next one."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.code} {reply.text}")
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Hop:
    """One next hop to try: `open` returns a ready session (EHLO, TLS, AUTH done) or raises HopFailed."""

    label: str  # for logs: "MBX1[127.0.0.2]:25"
    key: str  # sessions are reused between transactions with the same key
    open: Callable[[], Awaitable[SmtpClient]]
    # A MAIL reply that says the *hop* cannot serve us now (not that the message is bad): try the
    # next hop and, if none takes it, answer 4xx. Between our own servers, a 530/535 means the
    # hop did not recognize us (a directory change not yet seen), not that the message is refused.
    transient_mail_codes: frozenset[int] = frozenset()


@dataclass(slots=True)
class Relayed:
    """Per-recipient outcomes of one relayed transaction."""

    accepted: list[EnvelopeRecipient] = field(default_factory=list)
    refused: list[tuple[EnvelopeRecipient, Reply]] = field(default_factory=list)
    pending: list[EnvelopeRecipient] = field(default_factory=list)
    accepted_reply: Reply | None = None  # the first final 250
    last_error: Reply = NO_NEXT_HOP  # why the pending recipients are still pending
    accepted_by: str | None = None


class Relay:
    """Runs transactions over reusable sessions; one per process, shared by every session."""

    def __init__(self, connections: Connections | None = None) -> None:
        self.connections = connections or Connections()

    async def relay(self, tx: Transaction, data: bytes, hops: Iterable[Hop]) -> Relayed:
        """Offer the transaction to each hop in turn until no recipient is left pending."""
        result = Relayed(pending=list(tx.recipients))
        needs = needs_of(tx.sender, [r.address for r in result.pending], data, dict(tx.mail_params))
        payload = data if needs.binary else dot_stuffed(data)
        for hop in hops:
            if not result.pending:
                break
            try:
                ambiguous = await self._try(hop, tx, needs, payload, result)
            except HopFailed as exc:
                log.info("next hop %s unusable: %s %s", hop.label, exc.reply.code, exc.reply.text)
                result.last_error = exc.reply
                continue
            if ambiguous:
                break
        return result

    async def _session(self, hop: Hop) -> tuple[SmtpClient, bool]:
        parked = self.connections.take(hop.key)
        if parked is not None:
            return parked, True
        return await hop.open(), False

    async def _try(self, hop: Hop, tx: Transaction, needs: Needs, payload: bytes, result: Relayed) -> bool:
        """One hop; True when the outcome is unknown (connection lost after the content)."""
        client, reused = await self._session(hop)
        try:
            exchange = await self._transact(client, tx, needs, payload, result.pending)
        except ConnectionLost as exc:
            await client.close(polite=False)
            if reused and not exc.after_data:  # a parked session had gone stale: once more, afresh
                client, reused = await hop.open(), False
                try:
                    exchange = await self._transact(client, tx, needs, payload, result.pending)
                except ConnectionLost as again:
                    await client.close(polite=False)
                    return self._lost(hop, again, result)
            else:
                return self._lost(hop, exc, result)
        if isinstance(exchange, Reply):  # this hop cannot take such a message at all
            result.refused += [(r, exchange) for r in result.pending]
            result.pending = []
            await self.connections.give_back(hop.key, client)
            return False
        if not exchange.completed and not await client.reset():
            client.broken = True
        await self.connections.give_back(hop.key, client)
        self._record(hop, exchange.mail, exchange.rcpts, exchange.data, result)
        return False

    @staticmethod
    async def _transact(
        client: SmtpClient, tx: Transaction, needs: Needs, payload: bytes, rcpts: Sequence[EnvelopeRecipient]
    ) -> Exchange | Reply:
        caps = client.capabilities
        refused = refusal(needs, caps)
        if refused is not None:
            return parse_reply(refused)
        params = tx.mail_params
        mail = mail_command(tx.sender, needs, caps, ret=params.get("ret"), envid=params.get("envid"))
        commands = [
            rcpt_command(r.address, caps, notify=r.notify, orcpt=r.orcpt, original=r.address) for r in rcpts
        ]
        return await client.transaction(mail, commands, payload, bdat=needs.binary)

    @staticmethod
    def _lost(hop: Hop, exc: ConnectionLost, result: Relayed) -> bool:
        log.warning("next hop %s: %s", hop.label, exc)
        result.last_error = Reply(451, "4.4.2", f"Lost connection with the next hop {hop.label}")
        return exc.after_data

    @staticmethod
    def _record(
        hop: Hop, mail: Reply, rcpts: Sequence[Reply], data: Reply | None, result: Relayed
    ) -> None:
        pending, result.pending = result.pending, []
        if not mail.is_positive:
            if mail.is_transient or mail.code in hop.transient_mail_codes:
                result.pending, result.last_error = pending, as_transient(mail)
            else:
                result.refused += [(r, mail) for r in pending]
            return
        taken = []
        for rcpt, reply in zip(pending, rcpts, strict=True):
            if reply.is_positive:
                taken.append(rcpt)
            elif reply.is_transient:
                result.pending.append(rcpt)
                result.last_error = as_transient(reply)
            else:
                result.refused.append((rcpt, reply))
        if not taken or data is None:
            return
        if data.code // 100 == 2:
            result.accepted += taken
            if result.accepted_reply is None:
                result.accepted_reply, result.accepted_by = data, hop.label
        elif data.is_transient:
            result.pending += taken
            result.last_error = as_transient(data)
        else:
            result.refused += [(r, data) for r in taken]


def as_transient(reply: Reply) -> Reply:
    """A reply we may pass on as our own 4xx: never 421 (that would close the client's channel)."""
    if reply.is_transient and reply.code != 421:
        return reply
    enhanced = reply.enhanced if reply.enhanced and reply.enhanced[0] == "4" else "4.4.0"
    if reply.enhanced and reply.enhanced[0] == "5":
        enhanced = "4" + reply.enhanced[1:]
    return Reply(451, enhanced, reply.text)
