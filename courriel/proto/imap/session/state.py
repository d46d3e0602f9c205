"""The IMAP session state machine: greeting, the command loop, dispatch by state, completion.

RFC 9051 §3 (states and the commands each allows, §6), §7.1 (tagged OK/NO/BAD, untagged BAD
for a line without a usable tag, BYE), §7.4.1 (no EXPUNGE while answering FETCH, STORE or
SEARCH; UID forms excepted), §5.4 (autologout timer: `pre_auth_timeout` before login, 30
minutes after, per Set-ImapSettings). Every command ends with its tagged completion after the
untagged updates of the selected folder (updates.py). A handler's refusal becomes NO or BAD;
any other exception is logged and answered NO [SERVERBUG], and the session goes on: nothing a
client sends can end it abnormally. Too many bad commands or failed logins close it politely,
and a session whose mailbox moved away ends with `BYE [UNAVAILABLE]` at its next command.

Usage by the I/O layer:

    session = ImapSession(config, wire, authenticator, peer_ip)
    task = asyncio.create_task(session.run())
    ... session.data_received(data) / session.eof_received() / session.shutdown() ...
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from courriel.proto.imap import commands as c
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap import writer as w
from courriel.proto.imap.backend import BackendError
from courriel.proto.imap.errors import ParseError
from courriel.proto.imap.grammar import parse_command
from courriel.proto.imap.reader import CommandReceived, ContinuationNeeded, Event, Rejected
from courriel.proto.imap.session import (
    append,
    auth,
    compress,
    copymove,
    expunge,
    fetch,
    idle,
    listing,
    mailboxes,
    search,
    select,
    store,
)
from courriel.proto.imap.session.context import Done, Refusal, Session, State, Wake
from courriel.proto.imap.session.updates import sync

log = logging.getLogger(__name__)

Handler = Callable[[Session, Any], Awaitable[Done | None]]
ANY: Final = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
NOT_AUTH: Final = frozenset({State.NOT_AUTHENTICATED})
AUTH: Final = frozenset({State.AUTHENTICATED})
AUTH_OR_SELECTED: Final = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED: Final = frozenset({State.SELECTED})

#: command type → (handler, states that allow it)
COMMANDS: Final[dict[type, tuple[Handler, frozenset[State]]]] = {
    c.Capability: (auth.capability, ANY),
    c.Noop: (auth.noop, ANY),
    c.Logout: (auth.logout, ANY),
    c.Id: (auth.ident, ANY),
    c.StartTls: (auth.starttls, NOT_AUTH),
    c.Login: (auth.login, NOT_AUTH),
    c.Authenticate: (auth.authenticate, NOT_AUTH),
    c.Enable: (auth.enable, AUTH),  # RFC 5161 §3.1
    c.Compress: (compress.compress, AUTH_OR_SELECTED),  # RFC 4978 §3
    c.Namespace: (auth.namespace, AUTH_OR_SELECTED),
    c.Select: (select.select, AUTH_OR_SELECTED),
    c.Create: (mailboxes.create, AUTH_OR_SELECTED),
    c.Delete: (mailboxes.delete, AUTH_OR_SELECTED),
    c.Rename: (mailboxes.rename, AUTH_OR_SELECTED),
    c.Subscribe: (mailboxes.subscribe, AUTH_OR_SELECTED),
    c.Unsubscribe: (mailboxes.subscribe, AUTH_OR_SELECTED),
    c.Status: (mailboxes.status, AUTH_OR_SELECTED),
    c.List: (listing.list_, AUTH_OR_SELECTED),
    c.Lsub: (listing.lsub, AUTH_OR_SELECTED),
    c.Append: (append.append, AUTH_OR_SELECTED),
    c.Idle: (idle.idle, AUTH_OR_SELECTED),
    c.Check: (auth.noop, SELECTED),
    c.Close: (select.close, SELECTED),
    c.Unselect: (select.unselect, SELECTED),
    c.Expunge: (expunge.expunge, SELECTED),
    c.Search: (search.search, SELECTED),
    c.Fetch: (fetch.fetch, SELECTED),
    c.Store: (store.store, SELECTED),
    c.Copy: (copymove.copy, SELECTED),
    c.Move: (copymove.copy, SELECTED),
}
#: RFC 9051 §7.4.1: these (non-UID) commands must not be answered with EXPUNGE.
_NO_EXPUNGE: Final = (c.Fetch, c.Store, c.Search)
_POLLING: Final = (c.Noop, c.Check)
_SAVING_SEARCH: Final = re.compile(rb"\S+ (?:UID )?SEARCH RETURN \([^)]*\bSAVE\b", re.IGNORECASE)


class ImapSession(Session):
    __slots__ = ()

    async def run(self) -> None:
        """Serve the connection until LOGOUT, a timeout, the peer leaving or shutdown."""
        try:
            self.emit(w.untagged_status("OK", self.config.greeting, rc.capability(auth.capabilities(self))))
            while self.state is not State.LOGOUT:
                event = self.next_event()
                if event is not None:
                    await self._event(event)
                    continue
                await self.flush()
                woke = await self.wait(self._timeout())
                if woke is Wake.TIMEOUT:
                    self.bye("Disconnected for inactivity")  # RFC 9051 §5.4
                elif woke is Wake.STOP:
                    self.bye("Server shutting down")
                elif woke is Wake.EOF:
                    self.state = State.LOGOUT
            await self.flush()
        except Exception:
            log.exception("IMAP session with %s failed", self.peer)
        finally:
            self.close()

    def close(self) -> None:
        self.deselect()
        self.state = State.LOGOUT
        if self.account is not None:
            self.account.release()
            self.account = None
        self.wire.close()

    def _timeout(self) -> float:
        if self.state is State.NOT_AUTHENTICATED:
            return self.config.pre_auth_timeout
        return self.config.auth_timeout

    async def _event(self, event: Event) -> None:
        if isinstance(event, ContinuationNeeded):
            self.emit(w.continuation())  # RFC 9051 §7.5: the client waits for it
            await self.flush()
        elif isinstance(event, Rejected):
            if event.tag is None:
                self.emit(w.untagged_status(event.status, event.text, event.code))
            else:
                self.emit(w.tagged(event.tag, event.status, event.text, event.code))
            if event.status == "BAD":
                self._count_bad()
            if event.close:
                self.bye("Too much data")
        elif isinstance(event, CommandReceived):
            await self._command(event)
        # a LineReceived cannot come here: line mode is only on inside AUTHENTICATE and IDLE

    def _count_bad(self) -> None:
        self.bad_commands += 1
        if self.bad_commands >= self.config.max_bad_commands and self.state is not State.LOGOUT:
            self.bye("Too many invalid commands")

    async def _command(self, event: CommandReceived) -> None:
        if self.moved:  # the mailbox moved since login: the client must reconnect (context.py)
            self.bye_moved()
            return
        try:
            cmd = parse_command(event.command)
        except ParseError as exc:
            if _SAVING_SEARCH.match(event.command.lines[0]):
                self.saved = []  # RFC 5182 §2.1: a failed SEARCH … (SAVE) empties $
            if exc.tag is None:
                self.emit(w.untagged_status("BAD", exc.text))
            else:
                self.emit(w.tagged(exc.tag, exc.status, exc.text, exc.code))
            if exc.status == "BAD":
                self._count_bad()
            return
        handler, states = COMMANDS[type(cmd)]
        if self.state not in states:
            self.emit(w.tagged(cmd.tag, "BAD", f"Command not valid in the {self.state.value} state"))
            self._count_bad()
            return
        done = await self._perform(handler, cmd)
        if done is None:
            return  # the handler answered itself (LOGOUT, STARTTLS, closing refusals)
        if done.status == "BAD":
            self._count_bad()
        else:
            self.bad_commands = 0
        if self.state is State.SELECTED:
            held = isinstance(cmd, _NO_EXPUNGE) and not cmd.uid
            try:
                await sync(self, expunge=not held, poll=isinstance(cmd, _POLLING))
            except Exception:
                log.exception("IMAP update of the selected mailbox failed for %s", self.peer)
        self.emit(w.tagged(cmd.tag, done.status, done.text, done.code))

    async def _perform(self, handler: Handler, cmd: Any) -> Done | None:
        try:
            return await handler(self, cmd)
        except Refusal as refusal:
            return Done(refusal.text, refusal.code, refusal.status)
        except BackendError as error:
            return Done(error.text, error.code, "NO")
        except ParseError as error:  # a late grammar check inside a handler
            return Done(error.text, error.code, error.status)
        except Exception:
            log.exception("IMAP command %s failed for %s", type(cmd).__name__, self.peer)
            return Done("Internal error", rc.SERVERBUG, "NO")
