"""What every IMAP command handler shares: settings, the wire, input, output and session state.

`Session` owns no socket. The I/O layer pushes bytes in (`data_received`, `eof_received`) and
gives it a `Wire` to write to; the session frames input with `CommandReader` (feeding it only
what the current command needs, so pipelined input stays bounded by the inbox high-water mark)
and waits on one bare future with a timer, not a task per read. Output is gathered in one buffer
and handed to the wire when the session runs out of input or the buffer grows large, so a batch
of pipelined answers or a 10,000-line FETCH goes out in few writes.

States follow RFC 9051 §3 (not authenticated, authenticated, selected, logout). `enabled` holds
the ENABLE'd extensions (RFC 5161): CONDSTORE (RFC 7162 §3.1, also turned on by the first
CONDSTORE-enabling command), QRESYNC (RFC 7162 §3.2), IMAP4rev2 (RFC 9051) and UTF8=ACCEPT
(RFC 6855).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol

from courriel.proto.imap import respcodes as rc
from courriel.proto.imap import writer as w
from courriel.proto.imap.backend import Account, Authenticator, Watch
from courriel.proto.imap.errors import SequenceError
from courriel.proto.imap.reader import CommandReader, Event, LineReceived, ReaderLimits, Rejected
from courriel.proto.imap.sequence import SequenceSet, resolve
from courriel.proto.imap.session.selected import SelectedView

INBOX_HIGH_WATER: Final = 256 * 1024  # stop reading the socket beyond this much unframed input
FLUSH_AT: Final = 256 * 1024  # hand output to the wire once this much is waiting
PRE_AUTH_LITERAL: Final = 64 * 1024  # no APPEND before login: bound what a stranger can send
MOVED_TEXT: Final = "mailbox moved, please reconnect"


class State(Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class Wake(Enum):
    INPUT = "input"
    CHANGE = "change"
    TIMEOUT = "timeout"
    EOF = "eof"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Per-connection settings, built by the service from Set-ImapSettings when it accepts."""

    greeting: str = "Courriel IMAP4 service is ready."
    server_name: str = "Courriel"
    tls_active: bool = False  # implicit TLS (993/1993)
    tls_available: bool = False  # STARTTLS can be offered (a certificate is configured)
    #: LoginType PlainTextLogin/PlainTextAuthentication: credentials accepted without TLS.
    plaintext_auth: bool = False
    pre_auth_timeout: float = 60.0  # PreAuthenticatedConnectionTimeout
    auth_timeout: float = 1800.0  # AuthenticatedConnectionTimeout; RFC 9051 §5.4 asks ≥ 30 min
    idle_keepalive: float = 120.0  # "* OK Still here" during IDLE, for NAT and firewalls
    #: IDLE: how often to look for changes committed by other processes (changes made in this
    #: process arrive at once); each look is one query. `poll_every`, when set, is asked before
    #: each wait instead, so that a service can spread a query budget over all its sessions.
    poll_interval: float = 1.0
    poll_every: Callable[[], float] | None = None
    max_command: int = 64 * 1024  # MaxCommandSize, for the command text and its literals
    append_limit: int = 50 * 1024 * 1024  # RFC 7889 APPENDLIMIT
    max_login_failures: int = 3
    max_bad_commands: int = 20


class Wire(Protocol):
    """The I/O layer as the session sees it."""

    async def send(self, data: bytes) -> None:
        """Write, waiting while the peer does not read (backpressure)."""
        ...

    async def start_tls(self, ready: bytes) -> bool:
        """Send `ready` (the tagged OK) and upgrade to TLS; False when the handshake fails."""
        ...

    def start_compression(self, ready: bytes) -> bool:
        """Send `ready` (the tagged OK), then DEFLATE both ways (RFC 4978) with no wait in
        between; False when this wire cannot."""
        ...

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...


class Refusal(Exception):
    """Ends a command with `tag NO|BAD [code] text` (RFC 9051 §7.1)."""

    def __init__(self, status: str, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code


def no(text: str, code: str | None = None) -> Refusal:
    return Refusal("NO", text, code)


def bad(text: str, code: str | None = None) -> Refusal:
    return Refusal("BAD", text, code)


@dataclass(frozen=True, slots=True)
class Done:
    """A command's tagged completion."""

    text: str
    code: str | None = None
    status: str = "OK"


class Session:
    """Session state and the input/output machinery; state.py adds the command loop."""

    # Slotted: thousands of sessions sit in IDLE, and a per-instance dict costs ~1 KiB each.
    __slots__ = (
        "config",
        "wire",
        "authenticator",
        "peer",
        "state",
        "tls_active",
        "compressed",
        "account",
        "selected",
        "watch",
        "enabled",
        "saved",
        "changed",
        "login_failures",
        "bad_commands",
        "out",
        "reader",
        "_inbox",
        "_eof",
        "_stopping",
        "_paused",
        "_idling",
        "_waiter",
        "moved",
    )

    def __init__(self, config: SessionConfig, wire: Wire, authenticator: Authenticator, peer: str) -> None:
        self.config = config
        self.wire = wire
        self.authenticator = authenticator
        self.peer = peer
        self.state = State.NOT_AUTHENTICATED
        self.tls_active = config.tls_active
        self.compressed = False  # RFC 4978 COMPRESS=DEFLATE is on
        self.account: Account | None = None
        self.selected: SelectedView | None = None
        self.watch: Watch | None = None
        self.enabled: set[str] = set()
        self.saved: list[int] = []  # RFC 5182 SEARCHRES: the UIDs `$` stands for
        self.changed = False  # the selected folder changed since the last look
        self.login_failures = 0
        self.bad_commands = 0
        self.out = bytearray()
        self.reader = CommandReader(self._limits())
        self._inbox = bytearray()
        self._eof = False
        self._stopping = False
        self._paused = False
        self._idling = False
        self._waiter: asyncio.Future[None] | None = None
        self.moved = False  # the mailbox lives elsewhere now: BYE at the next command or in IDLE

    # ---- extensions --------------------------------------------------------------------------

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def utf8(self) -> bool:
        """Mailbox names travel as UTF-8 (RFC 9051 §5.1, RFC 6855 §3), not modified UTF-7."""
        return "IMAP4REV2" in self.enabled or "UTF8=ACCEPT" in self.enabled

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    def enable_condstore(self) -> None:
        """RFC 7162 §3.1: a CONDSTORE-enabling command. The first one while a mailbox is
        selected tells the client its HIGHESTMODSEQ (§3.1.2.1)."""
        if self.condstore:
            return
        self.enabled.add("CONDSTORE")
        if self.selected is not None:
            self.emit(w.untagged_status("OK", "Highest", rc.highestmodseq(self.selected.modseq)))

    @property
    def plaintext_ok(self) -> bool:
        """LoginType SecureLogin: LOGIN and AUTHENTICATE PLAIN only once TLS is active."""
        return self.tls_active or self.config.plaintext_auth

    def _limits(self) -> ReaderLimits:
        cfg = self.config
        authenticated = self.account is not None
        return ReaderLimits(
            max_command=cfg.max_command,
            max_append=cfg.append_limit if authenticated else PRE_AUTH_LITERAL,
            max_line=cfg.max_command,
        )

    def authenticated(self, account: Account) -> None:
        self.account = account
        self.state = State.AUTHENTICATED
        self.reader.limits = self._limits()

    def require_account(self) -> Account:
        if self.account is None:  # the dispatcher checks the state first
            raise bad("Not authenticated")
        return self.account

    def require_selected(self) -> SelectedView:
        if self.selected is None:
            raise bad("No mailbox selected")
        return self.selected

    # ---- the selected folder -----------------------------------------------------------------

    def positions(self, seqset: SequenceSet, by_uid: bool) -> list[int]:
        """Positions in the selected view that a set names (RFC 9051 §9; `$` per RFC 5182)."""
        view = self.require_selected()
        try:
            return resolve(seqset, view.uids, by_uid, self.saved)
        except SequenceError:
            raise bad("Invalid message sequence number") from None

    def select(self, view: SelectedView, watch: Watch) -> None:
        self.selected = view
        self.watch = watch
        self.state = State.SELECTED

    def deselect(self) -> None:
        """Leave the selected state (CLOSE, UNSELECT, a failed or new SELECT)."""
        if self.watch is not None:
            self.watch.close()
            self.watch = None
        self.selected = None
        self.saved = []  # RFC 5182 §2.1: $ is reset when the selected mailbox changes
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    def notify_change(self) -> None:
        """Called by the backend when the selected folder changed (possibly from another
        session): IDLE wakes at once, other commands look at their end."""
        self.changed = True
        if self._idling:
            self._wake()

    def relocated(self) -> None:
        """Called by the service when the logged-in mailbox moved to another database or server:
        the session ends with `BYE [UNAVAILABLE]` at the next command (IDLE at once), so the
        client reconnects and is routed to the new place."""
        self.moved = True
        if self._idling:
            self._wake()

    def bye_moved(self) -> None:
        self.bye(MOVED_TEXT, rc.UNAVAILABLE)

    # ---- input ---------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._inbox += data
        if len(self._inbox) >= INBOX_HIGH_WATER and not self._paused:
            self._paused = True
            self.wire.pause_reading()
        self._wake()

    def eof_received(self) -> None:
        self._eof = True
        self._wake()

    def shutdown(self) -> None:
        """The service is stopping: leave at the next wait for input."""
        self._stopping = True
        self._wake()

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def waiting(self) -> bool:
        """Blocked until input, a change or a timer (what tests wait for between steps)."""
        return self._waiter is not None and not self._waiter.done()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def next_event(self) -> Event | None:
        """The next framed event from the input that has arrived, or None."""
        while True:
            event = self.reader.next_event()
            if event is not None or not self._inbox:
                return event
            self.reader.feed(bytes(self._inbox))
            self._inbox.clear()
            if self._paused:
                self._paused = False
                self.wire.resume_reading()

    def reset_input(self) -> None:
        """After STARTTLS or COMPRESS: drop everything that arrived before the switch (RFC 9051
        §11.1; the CVE-2011-0411 command injection)."""
        self._inbox.clear()
        self.reader = CommandReader(self._limits())

    async def wait(self, timeout: float, *, changes: bool = False) -> Wake:
        """Until input arrives, the peer leaves, the service stops, `timeout` passes or (with
        `changes`) the selected folder changes."""
        found = self._ready(changes)
        if found is not None:
            return found
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._idling = changes
        timer = loop.call_later(max(timeout, 0.0), self._wake)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
            self._idling = False
        return self._ready(changes) or Wake.TIMEOUT

    def _ready(self, changes: bool) -> Wake | None:
        if self._inbox:
            return Wake.INPUT
        if self._eof:
            return Wake.EOF
        if self._stopping:
            return Wake.STOP
        if changes and (self.changed or self.moved):
            return Wake.CHANGE
        return None

    async def read_line(self, timeout: float) -> bytes | None:
        """One raw line (a SASL response); None on timeout, end of input or a line too long."""
        self.reader.line_mode(True)
        try:
            while True:
                event = self.next_event()
                if isinstance(event, LineReceived):
                    return event.line
                if isinstance(event, Rejected) or event is not None:
                    return None
                await self.flush()
                woke = await self.wait(timeout)
                if woke is not Wake.INPUT:
                    if woke is not Wake.TIMEOUT:
                        self.state = State.LOGOUT
                    return None
        finally:
            self.reader.line_mode(False)

    # ---- output --------------------------------------------------------------------------------

    def emit(self, data: bytes) -> None:
        self.out += data

    async def flush(self) -> None:
        if self.out:
            data = bytes(self.out)
            self.out.clear()
            await self.wire.send(data)

    async def flush_if_large(self) -> None:
        if len(self.out) >= FLUSH_AT:
            await self.flush()

    def bye(self, text: str, code: str | None = None) -> None:
        """`* BYE` and the logout state (RFC 9051 §7.1.5)."""
        self.emit(w.untagged_status("BYE", text, code))
        self.state = State.LOGOUT
