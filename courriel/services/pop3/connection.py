"""Runs a `Pop3Session` (courriel.proto.pop3) on a `Connection`: the I/O half of the engine.

The same loop serves the POP3 back end (decisions answered from the mailbox store) and the
Client Access POP3 front end (the login is answered by logging in on the back end, after which
the session is relayed as bytes: a `Handover`). The handler answers the engine's decisions.

Input is handed to the engine one line at a time, and no more while a decision is pending, so
when a login is handed over, the client's pipelined commands behind it are still ours, whole,
to pass on to the back end (RFC 2449 §6.6 lets clients pipeline). Idle timeouts follow
Set-PopSettings: PreAuthenticatedConnectionTimeout before login, AuthenticatedConnectionTimeout
after. A timeout or a stopping service closes the session without the UPDATE state, so nothing
marked for deletion is removed (RFC 1939 §3, §6).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from courriel.org.model import ProtocolSettings
from courriel.proto.pop3 import (
    Action,
    Close,
    DecideCommit,
    DecideLogin,
    DecideRetrieve,
    LoginResult,
    Pop3Session,
    Pop3Settings,
    Pop3State,
    Send,
    StartTLS,
)
from courriel.services.logins import plaintext_allowed
from courriel.services.stream import Connection, Shutdown

log = logging.getLogger(__name__)

# RFC 2449 §8 / RFC 3206 §4: our side's trouble is [SYS/TEMP].
IDLE_TIMEOUT = b"-ERR Disconnected for inactivity\r\n"
SHUTTING_DOWN = b"-ERR [SYS/TEMP] Service shutting down, try again later\r\n"
TOO_MANY_CONNECTIONS = b"-ERR [SYS/TEMP] Too many connections, try again later\r\n"
INTERNAL_ERROR = b"-ERR [SYS/TEMP] Internal error, try again later\r\n"
MOVED = b"-ERR [SYS/TEMP] Mailbox moved, please reconnect\r\n"
TEMPORARY_FAILURE = "Temporary failure, try again later"
NOT_REMOVED = "Some deleted messages were not removed"

Relay = Callable[[Connection, bytes], Awaitable[None]]


@dataclass(frozen=True)
class Handover:
    """The login succeeded on a back end: send `reply` (its +OK) to the client, then `relay`
    carries the rest of the session, starting with the client's input not yet consumed."""

    reply: bytes
    relay: Relay


@dataclass(frozen=True)
class Timeouts:
    pre_auth: float  # PreAuthenticatedConnectionTimeout
    authenticated: float  # AuthenticatedConnectionTimeout

    @classmethod
    def of(cls, settings: ProtocolSettings) -> Timeouts:
        return cls(settings.pre_authenticated_connection_timeout, settings.authenticated_connection_timeout)


def engine_settings(settings: ProtocolSettings, connection: Connection) -> Pop3Settings:
    """The engine's settings for one connection under Set-PopSettings."""
    defaults = Pop3Settings()
    return Pop3Settings(
        banner=settings.banner or defaults.banner,
        tls_available=connection.listeners.tls is not None,
        tls_active=connection.tls_active,
        login_allowed_without_tls=plaintext_allowed(settings),
        # MaxCommandSize, kept within what the engine buffers while a decision is pending.
        max_line=max(256, min(settings.max_command_size, defaults.max_pipelined)),
    )


class Pop3Handler(Protocol):
    """What answers the engine's decisions. An exception from `login` or `commit` becomes a
    temporary failure for the client; one from `retrieve` ends the session."""

    async def login(self, decision: DecideLogin, connection: Connection) -> LoginResult | Handover: ...

    async def retrieve(self, uid: str) -> bytes | None: ...

    async def commit(self, deletions: list[str]) -> str | None: ...

    def finish(self) -> None:
        """The session is over (whatever happened): release the lock and counters."""


class Pop3Conversation:
    def __init__(
        self,
        connection: Connection,
        session: Pop3Session,
        handler: Pop3Handler,
        timeouts: Timeouts,
        moved: Callable[[], bool] | None = None,
    ) -> None:
        """`moved`: asked before each command of the TRANSACTION state; once true, the mailbox
        lives elsewhere now and the session ends with [SYS/TEMP] so the client reconnects."""
        self._conn = connection
        self._session = session
        self._handler = handler
        self._timeouts = timeouts
        self._moved = moved
        self._pending = bytearray()  # client input the engine has not seen yet

    async def run(self) -> None:
        try:
            actions = self._session.start()
            while True:
                outcome = await self._perform(actions)
                if isinstance(outcome, Handover):
                    await self._conn.write(outcome.reply)
                    await outcome.relay(self._conn, bytes(self._pending))
                    return
                if not outcome:
                    return
                next_actions = await self._next_actions()
                if next_actions is None:
                    return
                actions = next_actions
        except Shutdown:
            await self._conn.write(SHUTTING_DOWN)
        except Exception:
            # The store failed under a RETR: no reply can be right, so end the session cleanly.
            log.exception("POP3 session with %s failed", self._conn.peer[0])
            await self._conn.write(INTERNAL_ERROR)
        finally:
            self._handler.finish()

    async def _next_actions(self) -> list[Action] | None:
        """Feed the engine line by line until it has something to do; None once we hang up."""
        while True:
            while self._pending:
                if self._moved is not None and self._session.state is Pop3State.TRANSACTION and self._moved():
                    await self._conn.write(MOVED)
                    return None
                end = self._pending.find(b"\n")
                cut = len(self._pending) if end == -1 else end + 1
                chunk = bytes(self._pending[:cut])
                del self._pending[:cut]
                actions = self._session.feed(chunk)
                if actions:
                    return actions
            authenticated = self._session.state is Pop3State.TRANSACTION
            timeout = self._timeouts.authenticated if authenticated else self._timeouts.pre_auth
            data = await self._conn.receive(timeout)
            if data is None:
                await self._conn.write(IDLE_TIMEOUT)
                return None
            if not data:
                return self._session.eof()
            self._pending += data

    async def _perform(self, actions: list[Action]) -> bool | Handover:
        """Carry out actions, answering decisions; False once the session is over."""
        queue = deque(actions)
        out = bytearray()
        while queue:
            action = queue.popleft()
            if isinstance(action, Send):
                out += action.data
            elif isinstance(action, StartTLS):
                self._pending.clear()  # sent before our +OK: injected plaintext (RFC 2595 §3.1)
                if not await self._conn.start_tls(bytes(out)):
                    return False
                out.clear()
                queue.extend(self._session.tls_started())
            elif isinstance(action, Close):
                await self._conn.write(bytes(out))
                return False
            else:
                # A decision may take a while (a password hash, a back end): flush first.
                await self._conn.write(bytes(out))
                out.clear()
                answer = await self._decide(action)
                if isinstance(answer, Handover):
                    return answer
                queue.extend(self._session.resolve(answer))
        await self._conn.write(bytes(out))
        return not self._conn.closed

    async def _decide(
        self, decision: DecideLogin | DecideRetrieve | DecideCommit
    ) -> LoginResult | Handover | bytes | str | None:
        if isinstance(decision, DecideLogin):
            try:
                return await self._handler.login(decision, self._conn)
            except Exception:
                log.exception("POP3 login for %r failed", decision.username)
                return LoginResult(ok=False, error=TEMPORARY_FAILURE)
        if isinstance(decision, DecideRetrieve):
            return await self._handler.retrieve(decision.uid)
        try:
            return await self._handler.commit(decision.deletions)
        except Exception:
            log.exception("POP3 commit failed")
            return NOT_REMOVED
