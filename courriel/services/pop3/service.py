"""The POP3 back-end service of a Mailbox server: 1110 (STLS) and 1995 (TLS), DESIGN.md §2.

Each connection runs the POP3 engine (courriel.proto.pop3) through `Pop3Conversation`; this
module answers its decisions from the directory and the mailbox databases mounted here:
- login: `DirectoryLogin` (throttle, password, PopEnabled, Set-PopSettings -Enabled), then
  MaxConnectionsPerUser, then the maildrop lock (RFC 1939 §8, [IN-USE] per RFC 2449 §8.1.2),
  then a snapshot of the Inbox (maildrop.py);
- RETR/TOP: the message bytes, or "-ERR" when IMAP expunged it meanwhile;
- QUIT: the marked messages are removed (RFC 1939 §6) and the lock released; while
  `courriel mailbox move` fences the mailbox nothing is removed and QUIT answers [SYS/TEMP];
- a mailbox moved to another database (or its database dismounted here) ends the session at
  the next command with [SYS/TEMP], so the client reconnects to the new place (placement.py).
Settings are read from the directory snapshot for each new connection, so `courriel
pop-settings set` applies to the next one. Clients normally reach this service through the
Client Access front end (courriel.clientaccess.pop3), which logs in here with the client's
credentials over TLS.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from courriel.mailbox.fence import is_fenced
from courriel.mailbox.store import MailboxDatabase
from courriel.org.snapshot import DirectorySnapshot
from courriel.proto.pop3 import DecideLogin, LoginResult, Pop3Session
from courriel.security.throttle import LoginThrottle
from courriel.services.logins import DirectoryLogin, SessionCounter
from courriel.services.placement import FENCED_TEXT, Placement, Placements
from courriel.services.pop3.connection import (
    TEMPORARY_FAILURE,
    TOO_MANY_CONNECTIONS,
    Handover,
    Pop3Conversation,
    Timeouts,
    engine_settings,
)
from courriel.services.pop3.maildrop import MaildropLocks, StoreMaildrop
from courriel.services.stream import Connection, StreamListeners

log = logging.getLogger(__name__)

MAILBOX_UNAVAILABLE = "Mailbox is not available right now, try again later"
TOO_MANY_SESSIONS = "Too many sessions for this user"


class Pop3Service:
    """POP3 over the mailbox databases mounted on this server."""

    def __init__(
        self,
        *,
        snapshot: Callable[[], DirectorySnapshot],
        databases: Callable[[str], MailboxDatabase | None],
        throttle: LoginThrottle,
        tls: ssl.SSLContext | None,
        locks: MaildropLocks | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.login = DirectoryLogin(snapshot, throttle, "pop")
        self.databases = databases
        self.placements = Placements(snapshot, databases)
        self.locks = locks or MaildropLocks()
        self.counter = SessionCounter()
        self.listeners = StreamListeners("pop3-backend", self._serve, tls, reuse_port=reuse_port)

    async def start_listener(self, host: str, port: int, *, implicit_tls: bool) -> int:
        return await self.listeners.listen(host, port, implicit_tls=implicit_tls)

    def bound(self) -> list[tuple[str, int]]:
        return self.listeners.bound()

    async def stop(self, grace: float = 10.0) -> None:
        await self.listeners.stop(grace)

    async def _serve(self, connection: Connection) -> None:
        settings = self.login.settings()
        ip = connection.peer[0]
        # No per-address limit here: the clients of a back end are the front ends.
        if not self.counter.admit(ip, settings, per_ip=False):
            await connection.write(TOO_MANY_CONNECTIONS)
            return
        try:
            session = Pop3Session(engine_settings(settings, connection))
            handler = _MaildropSession(self, ip)
            await Pop3Conversation(connection, session, handler, Timeouts.of(settings), handler.moved).run()
        finally:
            self.counter.leave(ip)


class _MaildropSession:
    """One connection's answers to the engine (the `Pop3Handler` of connection.py)."""

    def __init__(self, service: Pop3Service, ip: str) -> None:
        self._service = service
        self._ip = ip
        self._user: str | None = None  # counted against MaxConnectionsPerUser
        self._locked: str | None = None  # the maildrop we hold
        self._drop: StoreMaildrop | None = None
        self._placement: Placement | None = None

    async def login(self, decision: DecideLogin, connection: Connection) -> LoginResult | Handover:
        service = self._service
        recipient = await service.login.verify(self._ip, decision.username, decision.password)
        if recipient is None:
            return LoginResult(ok=False)
        assert recipient.guid is not None and recipient.database is not None  # checked by verify
        db = service.databases(recipient.database)
        if db is None:
            # The directory moved the database, or it is not mounted here (yet).
            log.warning(
                "POP3 login for %s: database %s is not mounted here",
                recipient.primary_address,
                recipient.database,
            )
            return LoginResult(ok=False, error=MAILBOX_UNAVAILABLE)
        guid = recipient.guid
        if not service.counter.enter_user(guid, service.login.settings()):
            return LoginResult(ok=False, error=TOO_MANY_SESSIONS)
        self._user = guid
        if not service.locks.acquire(guid):
            self.finish()
            return LoginResult(ok=False, in_use=True)
        self._locked = guid
        try:
            self._drop = await StoreMaildrop.open(db, guid, recipient.primary_address)
        except Exception:
            log.exception("POP3 login for %s: cannot read the maildrop", recipient.primary_address)
            self.finish()
            return LoginResult(ok=False, error=TEMPORARY_FAILURE)
        self._placement = Placement(recipient.id, guid, recipient.database, db)
        log.info(
            "POP3 login %s from %s: %d messages", recipient.primary_address, self._ip, len(self._drop.entries)
        )
        return LoginResult(ok=True, maildrop=self._drop)

    async def retrieve(self, uid: str) -> bytes | None:
        assert self._drop is not None  # the engine asks only in the TRANSACTION state
        return await self._drop.read(uid)

    async def commit(self, deletions: list[str]) -> str | None:
        assert self._drop is not None
        try:
            await self._drop.remove(deletions)
        except Exception as exc:
            if not is_fenced(exc):
                raise
            log.info("POP3 QUIT: the mailbox is fenced by a move, nothing removed")
            return FENCED_TEXT
        return None

    def moved(self) -> bool:
        placement = self._placement
        return placement is not None and self._service.placements.moved(placement)

    def finish(self) -> None:
        if self._locked is not None:
            self._service.locks.release(self._locked)
            self._locked = None
        if self._user is not None:
            self._service.counter.leave_user(self._user)
            self._user = None
