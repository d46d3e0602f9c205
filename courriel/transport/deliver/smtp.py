"""The SMTP delivery stage: recipients routed to a send connector leave over SMTP (DESIGN.md §4).

The transport service hands over (message, recipients) with next hop `smtp:<connector>:<domain>`.
Recipients wait in one queue per destination (`deliver/connections.py`: the domain's MX hosts,
or the connector's smart hosts) and up to 20 sessions per destination work each queue, keeping
their connection for the next message (at most 20 per connection). An attempt:
1. fails the recipients at once if the message has expired (4.4.7) or is larger than the
   connector's MaxMessageSize (5.3.4; DSNs are exempt, as in Exchange);
2. finds the endpoints (`deliver/session.py`): null MX and NXDOMAIN fail, DNS trouble defers;
3. tries them in order until one gives a ready session; a session that cannot take the message
   (SMTPUTF8, 8BITMIME, BINARYMIME, SIZE: `esmtp.refusal`) fails it with 5.6.7/5.6.3/5.3.4;
4. runs the transaction (pipelined when offered) and maps each recipient's reply: 2xx relayed,
   4xx deferred by the retry schedule, 5xx failed; a broken connection before the content was
   sent moves on to the next endpoint, after it defers;
5. records every recipient's result, with the DSNs they call for, in one queue transaction,
   then writes SEND / DEFER / FAIL to the tracking log with the remote host and its reply.
Two hops lead to servers of our own organization (deliver/organization.py), with mutual TLS on
organization certificates: `server:<name>`, the implicit intra-organization send connector to the
Mailbox server where a recipient's database is mounted, and a send connector with
FrontEndProxyEnabled, whose mail goes through "Outbound Proxy Frontend" (717) of a Client Access
server of our site (this one first when co-located), which relays it to the Internet. Only the
first carries the organization's internal header fields; every other hop gets the message without
them (transport/firewall.py).

The duplicate window: the results are recorded right after the peer's final reply, before
anything else is done (no tracking write, no QUIT, no next command). What remains is the time
between the peer sending its 250 and our group commit's fsync (typically a few milliseconds):
a crash inside it makes us send that message again after the restart. SMTP cannot close it —
the peer cannot know whether we heard the 250 (RFC 1047) — and Exchange and Postfix have the
same window. Recipients of an attempt still in progress at a crash were never recorded, so they
are tried again; the peer discards a transaction whose connection dropped before its 250.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from courriel.core.errors import PermanentError, TransientError
from courriel.core.ids import new_id
from courriel.core.replies import Reply
from courriel.dns import NextHopResolver
from courriel.org.model import LoggingLevel, SendConnector, TransportConfig
from courriel.storage.blobs import BlobStore
from courriel.transport.deliver.client import ConnectionLost, ProtocolLogger, SmtpClient
from courriel.transport.deliver.connections import Connections
from courriel.transport.deliver.esmtp import (
    Needs,
    describe,
    dot_stuffed,
    mail_command,
    needs_of,
    rcpt_command,
    refusal,
)
from courriel.transport.deliver.organization import INTRA_ORG, OrgLinks
from courriel.transport.deliver.session import Endpoint, SessionFailed, SessionOpener, TlsContexts, endpoints
from courriel.transport.firewall import strip_internal
from courriel.transport.protocol_log import ProtocolLog
from courriel.transport.queue.store import (
    QueuedMessage,
    QueuedRecipient,
    QueueStore,
    RecipientResult,
    Reports,
)
from courriel.transport.reports import Outcome, Reporter
from courriel.transport.retry import expiry_error, is_expired, next_attempt
from courriel.transport.route.nexthop import UNREACHABLE
from courriel.transport.tracking import TrackingLog

log = logging.getLogger(__name__)
MAX_RCPTS_PER_TRANSACTION = 100  # RFC 5321 §4.5.3.1.8: every server takes at least 100
TOO_BIG = "552 5.3.4 Message size exceeds the limit for this destination"
NO_CONNECTOR = "451 4.4.0 The send connector for this destination is no longer available"
_EVENTS = {"relayed": "SEND", "retry": "DEFER", "failed": "FAIL"}
# Between servers of the organization a deferral is most often a restart, or the peer's
# MaxInboundConnectionPerSource while a backlog drains: try again at the next queue scan rather
# than on the Internet backoff, so mail flows again as soon as the server can take it.
INTRA_ORG_RETRY = 5.0


@dataclass(slots=True)
class _Job:
    msg: QueuedMessage
    rcpts: list[QueuedRecipient]
    connector: SendConnector
    domain: str  # the recipients' domain; for a `server:` hop, the server's name
    via: str = "connector"  # "connector", "server" (intra-organization) or "proxy" (FrontEndProxyEnabled)


@dataclass(slots=True)
class _Destination:
    """The jobs waiting for one destination and its sessions. `window`, when set, is how many
    sessions it takes now: lowered when it refuses a new session while others are open (a 421
    greeting at its MaxInboundConnectionPerSource, a refused connect), raised by one with each
    delivery after that, and gone at the connections' per-destination limit (Postfix's
    concurrency feedback)."""

    key: str
    jobs: deque[_Job] = field(default_factory=deque)
    workers: int = 0
    window: int | None = None

    def narrow(self) -> None:
        """One session fewer than are open now, at least one."""
        self.window = max(1, self.workers - 1)

    def widen(self, limit: int) -> None:
        if self.window is not None:
            self.window = None if self.window + 1 >= limit else self.window + 1

    def full(self) -> bool:
        """No new session now."""
        return self.window is not None and self.workers >= self.window

    def over(self) -> bool:
        """One session too many: the one that was refused ends."""
        return self.window is not None and self.workers > self.window


@dataclass(slots=True)
class _Attempt:
    outcomes: list[Outcome]
    source: str  # tracking source: SMTP, DNS or QUEUE
    client: SmtpClient | None = None  # a session worth keeping for the next message
    server_ip: str | None = None  # the peer that answered, for the tracking log
    refused: str | None = None  # no session could be opened (and no transaction was tried): why


def _connector_for(hop: str, connectors: Sequence[SendConnector]) -> tuple[SendConnector, str] | None:
    best = None
    for conn in connectors:
        prefix = f"smtp:{conn.name}:"
        if conn.enabled and hop.startswith(prefix) and (best is None or len(conn.name) > len(best[0].name)):
            best = (conn, hop[len(prefix) :])
    return best


class SmtpDelivery:
    def __init__(
        self,
        *,
        queue: QueueStore,
        blobs: BlobStore,
        tracking: TrackingLog,
        connectors: Callable[[], Sequence[SendConnector]],
        resolver: NextHopResolver,
        fqdn: str,
        transport_config: Callable[[], TransportConfig],
        protocol_log: ProtocolLog | None = None,
        cafile: str | None = None,
        connections: Connections | None = None,
        mx_port: int = 25,
        clock: Callable[[], float] = time.time,
        organization: OrgLinks | None = None,
    ) -> None:
        """`mx_port` is where MX hosts listen (25; tests without root move it); `cafile` the CAs
        that CertificateValidation and DomainValidation trust (None: the system's);
        `organization` reaches the other servers (None: a server with no certificate of its
        organization defers `server:` hops and sends FrontEndProxyEnabled connectors directly)."""
        self.queue = queue
        self.blobs = blobs
        self.tracking = tracking
        self.connectors = connectors
        self.resolver = resolver
        self.fqdn = fqdn
        self.transport_config = transport_config
        self.protocol_log = protocol_log
        self.contexts = TlsContexts(cafile)
        self.connections = connections or Connections()
        self.mx_port = mx_port
        self.clock = clock
        self.organization = organization
        self.reporter: Reporter | None = None  # the transport service sets it: DSNs with results
        self._destinations: dict[str, _Destination] = {}
        self._in_flight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.relayed = 0  # recipients relayed since start (benches, metrics)

    # -- intake -----------------------------------------------------------------------------

    def enqueue(self, msg: QueuedMessage, rcpts: list[QueuedRecipient]) -> None:
        """Queue these recipients of one message (ids committed); ones already in hand are skipped."""
        groups: dict[str, list[QueuedRecipient]] = {}
        for rcpt in rcpts:
            if rcpt.id is not None and rcpt.id not in self._in_flight:
                groups.setdefault(rcpt.next_hop, []).append(rcpt)
        connectors = list(self.connectors())
        for hop, group in groups.items():
            self._in_flight.update(r.id for r in group if r.id is not None)
            job = self._job(msg, group, hop, connectors)
            if job is None:
                self._spawn(self._unroutable(msg, group))
                continue
            if job.via == "connector":
                key = hop if job.connector.dns_routing_enabled else f"smtp:{job.connector.name}"
            else:
                key = hop if job.via == "server" else f"proxy:{job.connector.name}"
            dest = self._destinations.setdefault(key, _Destination(key))
            dest.jobs.append(job)
            self._wake(dest)

    def _job(
        self, msg: QueuedMessage, rcpts: list[QueuedRecipient], hop: str, connectors: Sequence[SendConnector]
    ) -> _Job | None:
        if hop.startswith("server:"):
            return _Job(msg, rcpts, INTRA_ORG, hop.split(":", 1)[1], "server")
        found = _connector_for(hop, connectors)
        if found is None:
            return None
        connector, domain = found
        proxied = connector.front_end_proxy_enabled and self.organization is not None
        return _Job(msg, rcpts, connector, domain, "proxy" if proxied else "connector")

    def busy(self, rcpt_id: int) -> bool:
        """Is this recipient queued here or being attempted?"""
        return rcpt_id in self._in_flight

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wake(self, dest: _Destination) -> None:
        for _ in range(len(dest.jobs)):
            if dest.full() or not self.connections.reserve(dest.key):
                return
            dest.workers += 1
            self._spawn(self._work(dest))

    async def _work(self, dest: _Destination) -> None:
        client: SmtpClient | None = None
        try:
            async with self.connections.slot():
                if dest.jobs:
                    client = self.connections.take(dest.key)
                while dest.jobs and not dest.over():
                    client = await self._attempt(dest, dest.jobs.popleft(), client)
                    if client is not None and not self.connections.reusable(client):
                        await client.close()
                        client = None
        finally:
            self.connections.release(dest.key)
            dest.workers -= 1
            if client is not None:
                await self.connections.give_back(dest.key, client)
            if dest.jobs:
                self._wake(dest)
            elif dest.workers == 0 and self._destinations.get(dest.key) is dest:
                del self._destinations[dest.key]

    async def _unroutable(self, msg: QueuedMessage, rcpts: list[QueuedRecipient]) -> None:
        """The connector was removed or disabled since routing: back to Unreachable, re-routed by the scan."""
        now = self.clock()
        try:
            changes = []
            for rcpt in rcpts:
                assert rcpt.id is not None
                domain = rcpt.address.rsplit("@", 1)[-1].lower()
                changes.append(
                    (
                        rcpt.id,
                        {
                            "next_hop": f"unreachable:{domain}",
                            "delivery_type": UNREACHABLE,
                            "status": "retry",
                            "next_attempt": now,
                            "last_error": NO_CONNECTOR,
                        },
                    )
                )
            await self.queue.reroute(changes)
            self._track(msg, "DEFER", "ROUTING", [r.address for r in rcpts], NO_CONNECTOR, None, None)
        except Exception:
            log.exception("re-routing recipients of %s failed; the queue scan will retry", msg.id)
        finally:
            self._in_flight.difference_update(r.id for r in rcpts if r.id is not None)

    # -- one attempt ------------------------------------------------------------------------

    async def _attempt(self, dest: _Destination, job: _Job, client: SmtpClient | None) -> SmtpClient | None:
        """Deliver one job and record its results; never raises. Returns a reusable session.

        A destination that refuses a new session while this server has others open to it is at
        its limit, not down: the job goes back to those sessions (no deferral, no backoff) and
        the destination's window narrows, so this worker ends."""
        attempt = _Attempt([], "SMTP", client)
        handed_back = False
        try:
            attempt = await self._deliver(job, client)
            if attempt.refused is not None and dest.workers > 1:
                dest.narrow()
                dest.jobs.appendleft(job)
                handed_back = True
                log.info("%s refused another session (%s): %d now", dest.key, attempt.refused, dest.window)
                return None
            await self._record(job, attempt)
            if attempt.client is not None:
                dest.widen(self.connections.per_destination)
        except Exception:
            log.exception("SMTP delivery of %s failed; the queue scan will retry", job.msg.id)
            if attempt.client is not None:
                await attempt.client.close(polite=False)
            return None
        finally:
            if not handed_back:
                self._in_flight.difference_update(r.id for r in job.rcpts if r.id is not None)
        return attempt.client

    def _outcome(self, job: _Job, rcpt: QueuedRecipient, status: str, error: str, **extra: Any) -> Outcome:
        assert rcpt.id is not None
        when = 0.0
        if status == "retry":
            now = self.clock()
            when = next_attempt(rcpt.attempts + 1, now, job.msg.expires_at, self.transport_config())
            if job.via == "server":  # our own server, most likely restarting: mail flows again soon after
                when = min(when, now + INTRA_ORG_RETRY)
        return Outcome(job.msg, rcpt, RecipientResult(rcpt.id, status, error, when), **extra)

    def _all(self, job: _Job, rcpts: Sequence[QueuedRecipient], status: str, error: str) -> list[Outcome]:
        return [self._outcome(job, r, status, error) for r in rcpts]

    async def _deliver(self, job: _Job, client: SmtpClient | None) -> _Attempt:
        msg, conn = job.msg, job.connector
        if is_expired(msg.expires_at, self.clock()):
            return _Attempt(
                [self._outcome(job, r, "failed", expiry_error(r.last_error)) for r in job.rcpts],
                "QUEUE",
                client,
            )
        if msg.source != "DSN" and msg.size > conn.max_message_size:
            return _Attempt(self._all(job, job.rcpts, "failed", TOO_BIG), "SMTP", client)
        data = await self.blobs.get(msg.digest)
        if job.via != "server":
            data = strip_internal(data)  # the header firewall: only our servers see them
        needs = needs_of(msg.sender, [r.address for r in job.rcpts], data, msg.envelope)
        payload = data if needs.binary else dot_stuffed(data)
        if client is not None and conn.require_tls and not client.tls:
            await client.close()  # parked before the connector began to require TLS
            client = None
        if client is not None:
            outcomes = await self._transact(client, job, needs, payload)
            if isinstance(outcomes, list):
                return _Attempt(outcomes, "SMTP", self._keep(client), client.address)
            await client.close(polite=False)  # the parked session had gone stale: start afresh
        try:
            targets, opener = await self._route(job)
        except PermanentError as exc:
            log.info("%s: %s", job.domain, exc.detail)
            return _Attempt(self._all(job, job.rcpts, "failed", exc.public), "DNS")
        except TransientError as exc:
            log.info("%s: %s", job.domain, exc.detail)
            return _Attempt(self._all(job, job.rcpts, "retry", exc.public), "DNS")
        last = f"451 4.4.0 No mail server for {job.domain} could be reached"
        transacted = False
        for endpoint in targets:  # RFC 5321 §5.1: every exchanger before deferring
            try:
                client = await opener.open(endpoint)
            except SessionFailed as exc:
                last = exc.error
                continue
            transacted = True
            outcomes = await self._transact(client, job, needs, payload)
            if isinstance(outcomes, list):
                return _Attempt(outcomes, "SMTP", self._keep(client), client.address)
            last = outcomes
            await client.close(polite=False)
        refused = None if transacted or not targets else last
        return _Attempt(self._all(job, job.rcpts, "retry", last), "SMTP", refused=refused)

    async def _route(self, job: _Job) -> tuple[list[Endpoint], SessionOpener]:
        """Where this job's session goes and under which rules; PermanentError or TransientError."""
        conn, org = job.connector, self.organization
        if job.via == "connector":
            targets = await endpoints(conn, job.domain, self.resolver, self.mx_port)
            return targets, SessionOpener(conn, conn.fqdn or self.fqdn, self.contexts, self._logger(conn))
        if org is None:
            raise TransientError(
                f"451 4.7.0 This server has no organization certificate to reach {job.domain}",
                "intra-organization hop without credentials",
            )
        if job.via == "server":
            targets = await org.mailbox_server(job.domain, self.resolver)
        else:
            targets, conn = await org.outbound_proxy(self.resolver), org.through_proxy(conn)
        return targets, SessionOpener(conn, self.fqdn, self.contexts, self._logger(conn), org.context)

    def _keep(self, client: SmtpClient) -> SmtpClient | None:
        if client.usable:
            return client
        asyncio.get_running_loop().create_task(client.close(polite=False))
        return None

    async def _transact(
        self, client: SmtpClient, job: _Job, needs: Needs, payload: bytes
    ) -> list[Outcome] | str:
        """Per-recipient outcomes, or the reason to try the next endpoint (nothing decided yet)."""
        caps = client.capabilities
        refused = refusal(needs, caps)
        if refused is not None:
            return self._all(job, job.rcpts, "failed", refused)
        env = job.msg.envelope
        mail = mail_command(job.msg.sender, needs, caps, ret=env.get("ret"), envid=env.get("envid"))
        outcomes: list[Outcome] = []
        pending = list(job.rcpts)
        while pending:
            chunk, pending = pending[:MAX_RCPTS_PER_TRANSACTION], pending[MAX_RCPTS_PER_TRANSACTION:]
            commands = [
                rcpt_command(r.address, caps, notify=r.notify, orcpt=r.orcpt, original=r.original)
                for r in chunk
            ]
            try:
                exchange = await client.transaction(mail, commands, payload, bdat=needs.binary)
            except ConnectionLost as exc:
                error = f"451 4.4.2 Lost connection with {client.peer}: {exc}"
                if not exc.after_data and not outcomes:
                    return error
                return outcomes + self._all(job, chunk + pending, "retry", error)
            if not exchange.completed and not await client.reset():
                client.broken = True
            if not exchange.mail.is_positive:
                return outcomes + [self._reply(job, r, exchange.mail, client) for r in chunk + pending]
            accepted, too_many = [], []
            for rcpt, reply in zip(chunk, exchange.rcpts, strict=True):
                if reply.is_positive:
                    accepted.append(rcpt)
                elif reply.code == 452 and reply.enhanced == "4.5.3" and exchange.data is not None:
                    too_many.append(rcpt)  # RFC 5321 §4.5.3.1.10: send these in another transaction
                else:
                    outcomes.append(self._reply(job, rcpt, reply, client))
            if exchange.data is not None:
                outcomes += [self._reply(job, r, exchange.data, client) for r in accepted]
            pending = too_many + pending
            if pending and not client.usable:
                return outcomes + self._all(
                    job, pending, "retry", f"451 4.4.2 Lost connection with {client.peer}"
                )
        return outcomes

    def _reply(self, job: _Job, rcpt: QueuedRecipient, reply: Reply, client: SmtpClient) -> Outcome:
        status = "relayed" if reply.is_positive else "retry" if reply.is_transient else "failed"
        return self._outcome(
            job, rcpt, status, describe(reply), remote_mta=client.host, passed_on=client.capabilities.dsn
        )

    # -- results ----------------------------------------------------------------------------

    async def _record(self, job: _Job, attempt: _Attempt) -> None:
        if self.reporter is not None:
            await self.reporter.record(attempt.outcomes)
        else:
            await self.queue.record_with_reports([o.result for o in attempt.outcomes], Reports())
        groups: dict[tuple[str, str | None, str | None], list[str]] = {}
        for o in attempt.outcomes:
            groups.setdefault((o.result.status, o.result.error, o.remote_mta), []).append(o.rcpt.address)
        for (status, error, remote), addresses in groups.items():
            if status == "relayed":
                self.relayed += len(addresses)
            server_ip = attempt.server_ip if remote else None
            self._track(
                job.msg,
                _EVENTS[status],
                attempt.source,
                addresses,
                error,
                remote,
                server_ip,
                job.connector.name,
            )

    def _track(
        self,
        msg: QueuedMessage,
        event: str,
        source: str,
        recipients: list[str],
        status: str | None,
        remote: str | None,
        server_ip: str | None,
        connector: str | None = None,
    ) -> None:
        self.tracking.write(
            event,
            source=source,
            internal_message_id=msg.id,
            message_id=msg.message_id,
            sender=msg.sender,
            recipients=recipients,
            recipient_status=status,
            connector=connector,
            server_ip=server_ip,
            detail=f"remote host {remote}" if remote else None,
            subject=msg.subject,
            size=msg.size,
        )

    def _logger(self, conn: SendConnector) -> Callable[[Endpoint], ProtocolLogger | None]:
        plog = self.protocol_log
        if plog is None or conn.protocol_logging_level is not LoggingLevel.VERBOSE:
            return lambda endpoint: None

        def for_session(endpoint: Endpoint) -> ProtocolLogger:
            session = new_id()[-12:]
            return lambda event, text: plog.write(conn.name, session, event, text)

        return for_session

    # -- shutdown ---------------------------------------------------------------------------

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self, grace: float = 30.0) -> None:
        """Let attempts in progress finish (up to `grace` seconds), then close every connection."""
        for dest in self._destinations.values():
            dest.jobs.clear()  # not started: still due in the queue, taken again at the next start
        if self._tasks:
            _, late = await asyncio.wait(list(self._tasks), timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5.0)
        await self.connections.close()
