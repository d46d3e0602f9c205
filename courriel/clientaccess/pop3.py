"""The Client Access POP3 service: 110 (STLS) and 995 (TLS), proxied to the POP3 back end.

The front end runs the POP3 engine itself (courriel.proto.pop3, through the back end's
`Pop3Conversation`) for everything before login: greeting, CAPA, STLS (RFC 2595), USER/PASS
(RFC 1939 §7) and AUTH PLAIN (RFC 5034), with Set-PopSettings' LoginType and timeouts. At the
login it checks the credentials, logs in on the back end holding the mailbox with AUTH PLAIN
and an initial response (one round trip, RFC 5034 §4), replays the back end's +OK to the client,
and relays the rest of the session. The back end's refusals map to the same codes for the client:
[IN-USE] (RFC 2449 §8.1.2), [AUTH] and [SYS/TEMP] (RFC 3206).
"""

from __future__ import annotations

import base64

from courriel.clientaccess.proxy import BackendLink, Denied, FrontEnd, Proxied, relay
from courriel.org.model import ProtocolSettings
from courriel.proto.pop3 import DecideLogin, LoginResult, Pop3Session
from courriel.services.pop3.connection import (
    TOO_MANY_CONNECTIONS,
    Handover,
    Pop3Conversation,
    Timeouts,
    engine_settings,
)
from courriel.services.stream import Connection

UNAVAILABLE = "Mailbox server unavailable, try again later"
TOO_MANY_SESSIONS = "Too many sessions for this user"


def plain_response(username: str, password: str) -> bytes:
    """The base64 SASL PLAIN response with no authorization identity (RFC 4616 §2)."""
    return base64.b64encode(b"\x00" + username.encode() + b"\x00" + password.encode())


async def backend_login(link: BackendLink, username: str, password: str) -> bytes | Denied:
    """Log in on a POP3 back end; its +OK line, or why not."""
    greeting = await link.read_line()
    if not greeting.startswith(b"+OK"):
        return Denied.UNAVAILABLE
    await link.send(b"AUTH PLAIN " + plain_response(username, password) + b"\r\n")
    answer = await link.read_line()
    if answer.startswith(b"+OK"):
        return answer
    if answer.startswith(b"-ERR [IN-USE]"):
        return Denied.IN_USE
    if answer.startswith(b"-ERR [AUTH]"):
        return Denied.CREDENTIALS
    return Denied.UNAVAILABLE


class Pop3FrontEnd(FrontEnd):
    name = "pop3-proxy"
    protocol = "pop"
    backend_service = "pop3-backend"
    too_many_connections = TOO_MANY_CONNECTIONS

    async def converse(self, connection: Connection, settings: ProtocolSettings) -> None:
        session = Pop3Session(engine_settings(settings, connection))
        handler = _ProxyLogin(self, connection.peer[0], settings.authenticated_connection_timeout)
        await Pop3Conversation(connection, session, handler, Timeouts.of(settings)).run()


class _ProxyLogin:
    """The front end's `Pop3Handler`: a login ends in a handover, never in a local maildrop."""

    def __init__(self, front: Pop3FrontEnd, ip: str, idle: float) -> None:
        self._front = front
        self._ip = ip
        self._idle = idle
        self._proxied: Proxied | None = None

    async def login(self, decision: DecideLogin, connection: Connection) -> LoginResult | Handover:
        outcome = await self._front.proxy_login(self._ip, decision.username, decision.password, backend_login)
        if outcome is Denied.CREDENTIALS:
            return LoginResult(ok=False)
        if outcome is Denied.IN_USE:
            return LoginResult(ok=False, in_use=True)
        if outcome is Denied.TOO_MANY:
            return LoginResult(ok=False, error=TOO_MANY_SESSIONS)
        if isinstance(outcome, Denied):
            return LoginResult(ok=False, error=UNAVAILABLE)
        self._proxied = proxied = outcome

        async def carry_on(client: Connection, leftover: bytes) -> None:
            await relay(client, proxied.link, leftover, self._idle)

        return Handover(outcome.reply, carry_on)

    async def retrieve(self, uid: str) -> bytes | None:
        # The engine asks only in the TRANSACTION state, which a handed-over session never enters.
        raise RuntimeError("the POP3 front end holds no maildrop")

    async def commit(self, deletions: list[str]) -> str | None:
        raise RuntimeError("the POP3 front end holds no maildrop")

    def finish(self) -> None:
        if self._proxied is not None:
            self._front.release(self._proxied)
            self._proxied = None
