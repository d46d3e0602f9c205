"""The IMAP4 conversation before login, as the Client Access front end holds it (sans-I/O).

Everything up to authentication is answered here: the greeting, CAPABILITY, NOOP, LOGOUT, ID
(RFC 2971), STARTTLS (RFC 9051 §6.2.1), LOGIN (§6.2.3) and AUTHENTICATE PLAIN (§6.2.2, RFC 4616)
with SASL-IR (RFC 4959). Framing and parsing are the IMAP protocol layer's (reader.py with its
literals and limits, grammar.py); this module only decides what each command means before login.
A login ends in `DecideLogin` for the I/O layer, which either refuses it (`refuse`) or hands the
connection over to a back end (`handover`) — the back end then answers everything else,
capabilities after login included (the front end's greeting lists only what it serves itself).

SecureLogin (Set-ImapSettings -LoginType, the default): no credentials before TLS; the
capability list says LOGINDISABLED and drops AUTH=PLAIN (RFC 9051 §6.2.3, §7.2.2).
Input is passed to the reader one line at a time and not at all while a decision is pending,
so at a handover the reader holds nothing: what the client pipelined behind its login is
returned whole by `handover()`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from courriel.proto.imap import commands as c
from courriel.proto.imap import respcodes as codes
from courriel.proto.imap import writer as w
from courriel.proto.imap.errors import ParseError
from courriel.proto.imap.grammar import parse_command
from courriel.proto.imap.reader import (
    CommandReader,
    CommandReceived,
    ContinuationNeeded,
    LineReceived,
    ReaderLimits,
    Rejected,
)
from courriel.proto.pop3.sasl import CANCEL, SaslError, decode_plain

# Texts sent to clients (shared with the tests).
LOGGED_OUT = "Logging out"
NOT_YET = "Log in first"
TLS_REQUIRED = "Plaintext authentication is disabled, use STARTTLS first"
TLS_ACTIVE = "TLS is already active"
TLS_UNAVAILABLE = "STARTTLS is not available"
BEGIN_TLS = "Begin TLS negotiation now"
AUTH_FAILED = "Authentication failed"
AUTH_CANCELLED = "Authentication cancelled"
AUTHZID_REFUSED = "Authorization identity not permitted"
NO_MECHANISM = "Unsupported authentication mechanism"
TOO_MANY_ERRORS = "Too many invalid commands"
TOO_MANY_FAILURES = "Too many failed logins"


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class StartTLS:
    """Upgrade the connection, then call `tls_started()`."""


@dataclass(frozen=True)
class Close:
    pass


@dataclass(frozen=True)
class DecideLogin:
    tag: str
    username: str
    password: str = field(repr=False)


Action = Send | StartTLS | Close | DecideLogin


@dataclass(frozen=True)
class Refusal:
    """Why a login failed, as the client is told: `tag NO [code] text`."""

    code: str
    text: str
    counts: bool = True  # a failed login toward `max_failures` (not a failure of ours)


@dataclass(frozen=True)
class ImapLoginSettings:
    banner: str = "Courriel IMAP4 service is ready."
    tls_available: bool = False  # STARTTLS offered
    tls_active: bool = False  # implicit TLS (993)
    login_allowed_without_tls: bool = False
    max_command: int = 10240  # MaxCommandSize: a command with its literals, before login
    max_failures: int = 3
    max_errors: int = 10
    implementation: str = "Courriel"


class ImapLoginSession:
    def __init__(self, settings: ImapLoginSettings) -> None:
        self._settings = settings
        self._tls = settings.tls_active
        self._reader = self._new_reader()
        self._input = bytearray()  # received, not yet given to the reader
        self._sasl_tag: str | None = None  # AUTHENTICATE waiting for the client's response
        self.pending: DecideLogin | None = None
        self.closed = False
        self._awaiting_tls = False
        self._errors = 0
        self._failures = 0

    def _new_reader(self) -> CommandReader:
        size = self._settings.max_command
        # Nothing is appended before login: an APPEND literal gets no more room than a command.
        return CommandReader(ReaderLimits(max_command=size, max_append=size, max_line=size, max_skip=1 << 20))

    @property
    def login_allowed(self) -> bool:
        return self._tls or self._settings.login_allowed_without_tls

    def capabilities(self) -> list[str]:
        caps = ["IMAP4rev1", "SASL-IR", "LITERAL+", "ID"]
        if self._settings.tls_available and not self._tls:
            caps.append("STARTTLS")
        caps.append("AUTH=PLAIN" if self.login_allowed else "LOGINDISABLED")
        return caps

    def start(self) -> list[Action]:
        caps = codes.capability(self.capabilities())
        return [Send(w.untagged_status("OK", self._settings.banner, caps))]

    def feed(self, data: bytes) -> list[Action]:
        if self.closed or self._awaiting_tls:
            return []
        self._input += data
        return [] if self.pending is not None else self._run()

    def tls_started(self) -> list[Action]:
        # RFC 9051 §6.2.1: anything the client sent before the handshake is forgotten.
        self._awaiting_tls = False
        self._tls = True
        self._input.clear()
        self._reader = self._new_reader()
        return self._run()

    def eof(self) -> list[Action]:
        if self.closed:
            return []
        self.closed = True
        return [Close()]

    def refuse(self, refusal: Refusal) -> list[Action]:
        """The pending login failed."""
        decision = self._take_pending()
        out: list[Action] = [Send(w.tagged(decision.tag, "NO", refusal.text, refusal.code))]
        if refusal.counts:
            self._failures += 1
            if self._failures >= self._settings.max_failures:
                return out + self._bye(TOO_MANY_FAILURES)
        return out + self._run()

    def handover(self) -> bytes:
        """The pending login succeeded on a back end: the session is over here; returns the
        client's input that followed the login, for the back end."""
        self._take_pending()
        self.closed = True
        rest = bytes(self._input)
        self._input.clear()
        return rest

    def _take_pending(self) -> DecideLogin:
        if self.pending is None:
            raise RuntimeError("no login is pending")
        decision, self.pending = self.pending, None
        return decision

    # ---- input --------------------------------------------------------------------------------

    def _run(self) -> list[Action]:
        out: list[Action] = []
        while not self.closed and self.pending is None and not self._awaiting_tls:
            event = self._reader.next_event()
            if event is None:
                if not self._input:
                    break
                # Up to and including the next LF: a command can only end there.
                end = self._input.find(b"\n")
                cut = len(self._input) if end == -1 else end + 1
                self._reader.feed(bytes(self._input[:cut]))
                del self._input[:cut]
                continue
            if isinstance(event, CommandReceived):
                try:
                    command = parse_command(event.command)
                except ParseError as error:
                    out += self._error(error.tag, error.status, error.text, error.code)
                    continue
                out += self._command(command)
            elif isinstance(event, ContinuationNeeded):
                out.append(Send(w.continuation()))
            elif isinstance(event, Rejected):
                out += self._error(event.tag, event.status, event.text, event.code)
                if event.close and not self.closed:
                    out += self._bye(TOO_MANY_ERRORS)
            elif isinstance(event, LineReceived):
                out += self._sasl_response(event.line)
        return out

    def _error(self, tag: str | None, status: str, text: str, code: str | None) -> list[Action]:
        reply = w.tagged(tag, status, text, code) if tag else w.untagged_status(status, text, code)
        out: list[Action] = [Send(reply)]
        self._errors += 1
        if self._errors >= self._settings.max_errors:
            out += self._bye(TOO_MANY_ERRORS)
        return out

    def _bye(self, text: str) -> list[Action]:
        self.closed = True
        return [Send(w.untagged_status("BYE", text)), Close()]

    # ---- commands -----------------------------------------------------------------------------

    def _command(self, command: c.Command) -> list[Action]:
        tag = command.tag
        if isinstance(command, c.Capability):
            return [Send(w.capability(self.capabilities()) + w.tagged(tag, "OK", "CAPABILITY completed"))]
        if isinstance(command, c.Noop):
            return [Send(w.tagged(tag, "OK", "NOOP completed"))]
        if isinstance(command, c.Logout):
            # RFC 9051 §6.1.3: BYE, then the tagged OK, then the server closes.
            self.closed = True
            bye = w.untagged_status("BYE", LOGGED_OUT) + w.tagged(tag, "OK", "LOGOUT completed")
            return [Send(bye), Close()]
        if isinstance(command, c.Id):
            ident = w.untagged(
                b"ID " + w.plist([w.quoted(b"name"), w.quoted(self._settings.implementation.encode())])
            )
            return [Send(ident + w.tagged(tag, "OK", "ID completed"))]
        if isinstance(command, c.StartTls):
            return self._starttls(tag)
        if isinstance(command, c.Login):
            if not self.login_allowed:
                return [Send(w.tagged(tag, "NO", TLS_REQUIRED, codes.PRIVACYREQUIRED))]
            return self._decide(DecideLogin(tag, command.username, command.password))
        if isinstance(command, c.Authenticate):
            return self._authenticate(command)
        return self._error(tag, "BAD", NOT_YET, None)

    def _starttls(self, tag: str) -> list[Action]:
        if self._tls:
            return self._error(tag, "BAD", TLS_ACTIVE, None)
        if not self._settings.tls_available:
            return self._error(tag, "BAD", TLS_UNAVAILABLE, None)
        self._awaiting_tls = True
        self._input.clear()  # pipelined behind STARTTLS in plaintext: dropped (RFC 9051 §11.1)
        return [Send(w.tagged(tag, "OK", BEGIN_TLS)), StartTLS()]

    def _authenticate(self, command: c.Authenticate) -> list[Action]:
        tag = command.tag
        if command.mechanism.upper() != "PLAIN":
            return [Send(w.tagged(tag, "NO", NO_MECHANISM, codes.CANNOT))]
        if not self.login_allowed:
            return [Send(w.tagged(tag, "NO", TLS_REQUIRED, codes.PRIVACYREQUIRED))]
        if command.initial_response is not None:
            # One PLAIN decoder for every protocol: it takes the base64 text, so re-encode.
            return self._plain(tag, base64.b64encode(command.initial_response).decode("ascii") or "=")
        self._sasl_tag = tag
        self._reader.line_mode(True)
        return [Send(w.continuation_data(b""))]

    def _sasl_response(self, line: bytes) -> list[Action]:
        tag, self._sasl_tag = self._sasl_tag, None
        self._reader.line_mode(False)
        if tag is None:  # the reader is in line mode only for AUTHENTICATE
            return []
        text = line.decode("latin-1")
        if text.strip() == CANCEL:
            # RFC 9051 §6.2.2: a cancelled exchange is rejected with a tagged BAD.
            return [Send(w.tagged(tag, "BAD", AUTH_CANCELLED))]
        return self._plain(tag, text)

    def _plain(self, tag: str, response: str) -> list[Action]:
        try:
            credentials = decode_plain(response)
        except SaslError as error:
            return self._error(tag, "BAD", str(error), None)
        if credentials.authzid and credentials.authzid != credentials.authcid:
            return [Send(w.tagged(tag, "NO", AUTHZID_REFUSED, codes.AUTHORIZATIONFAILED))]
        return self._decide(DecideLogin(tag, credentials.authcid, credentials.password))

    def _decide(self, decision: DecideLogin) -> list[Action]:
        self.pending = decision
        return [decision]
