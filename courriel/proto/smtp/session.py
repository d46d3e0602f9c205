"""The SMTP server session as a sans-I/O state machine: bytes and answers in, actions out.

    session = SmtpSession(settings, peer=("192.0.2.1", 4242))
    actions = session.start()           # DecideConnect first
    actions = session.feed(data)        # any chunking, pipelined commands included (RFC 2920)
    actions = session.resolve(reply)    # the answer to the pending Decide* action
    actions = session.tls_started()     # after StartTLS, once the handshake is done (RFC 3207)
    actions = session.eof()             # the peer closed

This module splits input into command lines (RFC 5321 §2.3.8, §4.5.3.1.4 line limits; a bare
LF ends a command line too, which is harmless outside DATA), dispatches them to the command
families (`hello`, `auth`, `transaction`) and answers the simple commands itself (NOOP, QUIT,
VRFY, HELP). Input never accumulates without bound: a line over the limit is answered
500 5.5.2 and skipped, and input buffered behind a pending decision is capped (421).
"""

from __future__ import annotations

from collections.abc import Callable

from courriel.core.replies import (
    BAD_ARGUMENTS,
    CANNOT_VRFY,
    CLOSING,
    ENCRYPTION_REQUIRED,
    HELP,
    INPUT_OVERFLOW,
    LINE_TOO_LONG,
    NO_SERVICE,
    NOT_IMPLEMENTED,
    OK,
    UNKNOWN_COMMAND,
    Reply,
)

from .auth import AuthCommands
from .commands import Command, ReplyError, parse_command
from .events import Action, DecideConnect
from .hello import HelloCommands
from .settings import AUTH_LINE_LIMIT, SessionSettings
from .state import Mode
from .transaction import TransactionCommands

# RFC 3207 §4: what a client may do before TLS on a connector that requires it.
_BEFORE_TLS = frozenset({"EHLO", "HELO", "NOOP", "QUIT", "RSET", "STARTTLS"})
# Known commands we do not offer: 502 rather than 500 (RFC 5321 §4.2.4).
_NOT_OFFERED = frozenset({"EXPN", "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML"})
# Room on MAIL/RCPT lines for the extensions' parameters (RFC 5321 §4.5.3.1.4 allows it):
# ENVID +100 and ORCPT +500 (RFC 3461 §4), AUTH= +500 (RFC 4954 §5), and SIZE, BODY, SMTPUTF8.
_ENVELOPE_EXTRA = 1024


class SmtpSession(HelloCommands, AuthCommands, TransactionCommands):
    """One SMTP server session (see the module docstring for the calling convention)."""

    def __init__(
        self,
        settings: SessionSettings,
        peer: tuple[str, int],
        *,
        trace: bool = False,
        authenticated_server: str | None = None,
    ) -> None:
        """`trace` adds `Trace` actions with each client command line for the protocol log;
        `authenticated_server` is the server an implicit-TLS client certificate proved."""
        super().__init__(settings, peer, trace=trace, authenticated_server=authenticated_server)
        self._started = False
        self._handlers: dict[str, Callable[[Command], None]] = {
            "EHLO": self._hello,
            "HELO": self._hello,
            "MAIL": self._mail,
            "RCPT": self._rcpt,
            "DATA": self._data,
            "BDAT": self._bdat,
            "RSET": self._rset,
            "NOOP": self._noop,
            "QUIT": self._quit,
            "VRFY": self._vrfy,
            "HELP": self._help,
            "STARTTLS": self._starttls,
            "AUTH": self._auth,
        }

    # -- the sans-I/O interface --------------------------------------------------------------

    def start(self) -> list[Action]:
        """Begin the session: asks the policy about the connection before the greeting."""
        if self._started:
            raise RuntimeError("session already started")
        self._started = True
        self._decide(DecideConnect(self.info()), self._greet)
        return self._take()

    def feed(self, data: bytes) -> list[Action]:
        """Bytes from the peer, in any chunking."""
        if self._mode in (Mode.CLOSED, Mode.TLS):
            return self._take()  # after 220 to STARTTLS, plaintext is never obeyed (CVE-2011-0411)
        self._input += data
        if self._started:
            self._run()
        if len(self._input) > self.settings.max_pending_input and (
            self._pending is not None or not self._started
        ):
            self._reply(INPUT_OVERFLOW)
        return self._take()

    def resolve(self, decision: Reply | None) -> list[Action]:
        """Answer the pending decision (None accepts a connection or EHLO/HELO as is)."""
        if self._mode is Mode.CLOSED:
            return self._take()  # the answer came after the session ended
        if self._pending is None:
            raise RuntimeError("no decision is pending")
        _, then = self._pending
        self._pending = None
        then(decision)
        self._run()
        return self._take()

    def tls_started(self, authenticated_server: str | None = None) -> list[Action]:
        """The I/O layer completed the TLS handshake requested by a StartTLS action;
        `authenticated_server` is the organization server its client certificate proved."""
        if self._mode is not Mode.TLS:
            raise RuntimeError("no TLS upgrade was requested")
        self._tls_established()
        self._server = authenticated_server
        self._chunk_failure = None
        return self._take()

    def eof(self) -> list[Action]:
        """The peer closed its side: whatever was unfinished is dropped."""
        if self._mode is not Mode.CLOSED:
            self._close()
        return self._take()

    # -- input ----------------------------------------------------------------------------

    def _run(self) -> None:
        while self._pending is None:
            mode = self._mode
            if mode is Mode.COMMAND or mode is Mode.SASL:
                if not self._next_line():
                    return
            elif mode is Mode.DATA and self._input:
                self._read_data()
            elif mode is Mode.CHUNK and self._input:
                self._read_chunk()
            else:
                return

    def _next_line(self) -> bool:
        """Handle one input line; False when more input is needed."""
        buffer = self._input
        end = buffer.find(b"\n")
        if self._skipping_line:
            if end < 0:
                buffer.clear()
                return False
            del buffer[: end + 1]
            self._skipping_line = False
            return True
        limit = self._line_limit()
        if end < 0 and len(buffer) < limit:
            return False
        if end < 0 or end + 1 > limit:
            # RFC 5321 §4.5.3.1.4: refuse the line, drop it up to its end, go on.
            if end < 0:
                buffer.clear()
                self._skipping_line = True
            else:
                del buffer[: end + 1]
            self._line_too_long()
            return True
        line = bytes(buffer[: end - 1 if end and buffer[end - 1] == 0x0D else end])
        del buffer[: end + 1]
        if self._mode is Mode.SASL:
            self._sasl_response(line)
        else:
            self._command(line)
        return True

    def _line_limit(self) -> int:
        if self._mode is Mode.SASL:
            return AUTH_LINE_LIMIT
        base = self.settings.max_line_length
        head = bytes(self._input[:5]).upper()
        if head == b"AUTH ":
            return max(base, AUTH_LINE_LIMIT)  # RFC 4954 §4
        if head in (b"MAIL ", b"RCPT "):
            return base + _ENVELOPE_EXTRA
        return base

    def _line_too_long(self) -> None:
        if self._mode is Mode.SASL:
            self._abandon(LINE_TOO_LONG)
        else:
            self._fail(LINE_TOO_LONG)

    def _command(self, line: bytes) -> None:
        if self._trace:
            self._trace_line(_masked(line))
        try:
            command = parse_command(line)
        except ReplyError as error:
            self._fail(error.reply)
            return
        verb = command.verb
        if verb != "BDAT":
            self._chunk_failure = None
        handler = self._handlers.get(verb)
        if self._rejected and verb != "QUIT":
            self._fail(NO_SERVICE)  # RFC 5321 §3.1: after a 554 greeting only QUIT is served
        elif handler is None:
            self._fail(NOT_IMPLEMENTED if verb in _NOT_OFFERED else UNKNOWN_COMMAND)
        elif self.settings.require_tls and not self._tls_active and verb not in _BEFORE_TLS:
            self._fail(ENCRYPTION_REQUIRED)  # RFC 3207 §4
        else:
            handler(command)

    # -- the simple commands --------------------------------------------------------------------

    def _noop(self, command: Command) -> None:
        self._reply(OK)  # RFC 5321 §4.1.1.9: an argument is allowed and ignored

    def _quit(self, command: Command) -> None:
        self._reply(CLOSING)  # RFC 5321 §4.1.1.10
        self._close()

    def _vrfy(self, command: Command) -> None:
        if not command.arg:
            self._fail(BAD_ARGUMENTS)
        else:
            self._reply(CANNOT_VRFY)  # RFC 5321 §3.5.3: we do not disclose mailboxes

    def _help(self, command: Command) -> None:
        self._reply(HELP)


def _masked(line: bytes) -> str:
    """The line for the protocol log, with any AUTH initial response hidden."""
    text = line.decode("utf-8", "replace")
    if text[:5].upper() == "AUTH ":
        words = text.split()
        if len(words) > 2:
            return f"{words[0]} {words[1]} ****"
    return text
