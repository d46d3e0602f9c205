"""The POP3 server session: a sans-I/O state machine (RFC 1939, RFC 2449, RFC 2595, RFC 5034).

The I/O layer (the mailbox POP3 service, or the front end's proxy) owns the socket and the store
and drives this object:

    session = Pop3Session(settings)
    actions = session.start()          # the greeting
    actions = session.feed(data)       # bytes from the peer, any chunking
    actions = session.resolve(result)  # the answer to the pending decision
    actions = session.tls_started()    # after carrying out StartTLS
    actions = session.eof()            # the peer closed its side

Each call returns actions (see `actions.py`) to carry out in order. Commands are handled in the
order received, pipelined or not (RFC 2449 §6.6); while a decision is pending, further input
is buffered up to `max_pipelined` octets. The states are those of RFC 1939 §3: AUTHORIZATION
(`authorization.py`), TRANSACTION (`transaction.py`) and UPDATE (waiting for the commit).
"""

from __future__ import annotations

from enum import StrEnum

from courriel.proto.pop3 import authorization, transaction
from courriel.proto.pop3 import replies as r
from courriel.proto.pop3.actions import (
    Action,
    Close,
    DecideCommit,
    DecideLogin,
    DecideRetrieve,
    Decision,
    LoginResult,
    Send,
    StartTLS,
)
from courriel.proto.pop3.authorization import Authorization
from courriel.proto.pop3.replies import Code, Reply
from courriel.proto.pop3.settings import Pop3Settings
from courriel.proto.pop3.transaction import Transaction
from courriel.proto.pop3.wire import LineBuffer, LineTooLong

KNOWN_VERBS = authorization.VERBS | transaction.VERBS | {"CAPA"}


class Pop3State(StrEnum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"
    CLOSED = "CLOSED"


class Pop3Session:
    def __init__(self, settings: Pop3Settings) -> None:
        self._settings = settings
        self._lines = LineBuffer(settings.max_line)
        self._auth = Authorization(settings)
        self._txn: Transaction | None = None
        self._state = Pop3State.AUTHORIZATION
        self._pending: Decision | None = None
        self._awaiting_tls = False
        self._eof = False
        self._errors = 0
        self._failures = 0
        self._username: str | None = None

    @property
    def state(self) -> Pop3State:
        return self._state

    @property
    def username(self) -> str | None:
        """The name the client logged in with, once in the TRANSACTION state."""
        return self._username

    @property
    def tls_active(self) -> bool:
        return self._auth.tls_active

    @property
    def pending(self) -> Decision | None:
        return self._pending

    def start(self) -> list[Action]:
        # RFC 1939 §4: the greeting is a positive response.
        return [Send(r.ok(self._settings.banner).data)]

    def feed(self, data: bytes) -> list[Action]:
        if self._state is Pop3State.CLOSED or self._awaiting_tls:
            return []  # input after STLS belongs to the TLS handshake, not to us
        self._lines.feed(data)
        if self._pending is not None:
            if len(self._lines) > self._settings.max_pipelined:
                # A flood while we wait: no reply can be sent in order, so just hang up.
                self._state = Pop3State.CLOSED
                return [Close()]
            return []
        return self._run()

    def resolve(self, result: LoginResult | bytes | str | None) -> list[Action]:
        """Answer the pending decision: a LoginResult for DecideLogin; the message bytes (or
        None when gone) for DecideRetrieve; None or an error text for DecideCommit."""
        if self._state is Pop3State.CLOSED:
            return []
        decision = self._pending
        if decision is None:
            raise RuntimeError("resolve() with no decision pending")
        if isinstance(decision, DecideLogin):
            if not isinstance(result, LoginResult):
                raise TypeError("DecideLogin is resolved with a LoginResult")
            self._pending = None
            reply = self._logged_in(decision, result)
        elif isinstance(decision, DecideRetrieve):
            if not (result is None or isinstance(result, bytes)):
                raise TypeError("DecideRetrieve is resolved with bytes or None")
            self._pending = None
            assert self._txn is not None
            reply = self._txn.retrieved(result)
        else:
            if not (result is None or isinstance(result, str)):
                raise TypeError("DecideCommit is resolved with None or an error text")
            self._pending = None
            reply = self._committed(result)
        out: list[Action] = []
        self._emit(reply, out)
        return out + self._run()

    def tls_started(self) -> list[Action]:
        if not self._awaiting_tls:
            raise RuntimeError("tls_started() without StartTLS")
        self._awaiting_tls = False
        self._lines.clear()
        self._auth.tls_started()
        return self._run()

    def eof(self) -> list[Action]:
        """The peer closed. Without QUIT nothing is removed (RFC 1939 §6); a decision already
        out is still answered, then the session closes."""
        if self._state is Pop3State.CLOSED:
            return []
        self._eof = True
        if self._pending is not None:
            return []
        self._state = Pop3State.CLOSED
        return [Close()]

    def _run(self) -> list[Action]:
        out: list[Action] = []
        while self._state is not Pop3State.CLOSED and self._pending is None and not self._awaiting_tls:
            try:
                line = self._lines.next_line()
            except LineTooLong:
                self._auth.awaiting_sasl = False  # a lost SASL response fails the AUTH
                self._emit(r.err(r.LINE_TOO_LONG), out)
                continue
            if line is None:
                break
            self._emit(self._handle(line), out)
        if self._eof and self._pending is None and self._state is not Pop3State.CLOSED:
            self._state = Pop3State.CLOSED
            out.append(Close())
        return out

    def _emit(self, outcome: Reply | Decision, out: list[Action]) -> None:
        if not isinstance(outcome, Reply):
            self._pending = outcome
            if isinstance(outcome, DecideCommit):
                self._state = Pop3State.UPDATE
            out.append(outcome)
            return
        if outcome.fault:
            self._errors += 1
            if self._errors >= self._settings.max_errors:
                outcome = r.err(r.TOO_MANY_ERRORS, close=True)
        out.append(Send(outcome.data))
        if outcome.start_tls:
            # RFC 2595 §4: commands pipelined behind STLS were sent in plaintext and must not
            # be run inside TLS (the STARTTLS command injection flaw).
            self._lines.clear()
            self._awaiting_tls = True
            out.append(StartTLS())
        if outcome.close:
            self._state = Pop3State.CLOSED
            out.append(Close())

    def _handle(self, raw: bytes) -> Reply | Decision:
        if self._auth.awaiting_sasl:
            # Base64 is ASCII; latin-1 never fails, and anything else is refused as bad base64.
            return self._auth.sasl_response(raw.decode("latin-1"))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return r.err(r.BAD_ENCODING)
        if any(c < " " or c == "\x7f" for c in text):
            return r.err(r.BAD_CHARACTERS)
        word, _, arg = text.partition(" ")
        verb = word.upper() if word.isascii() else word
        if verb == "CAPA":
            return self._capa(arg)
        outcome: Reply | Decision | None = None
        if self._state is Pop3State.AUTHORIZATION:
            if verb == "QUIT":
                return r.ok(r.BYE, close=True)  # RFC 1939 §4: no UPDATE state from here
            outcome = self._auth.handle(verb, arg)
        elif self._txn is not None:
            outcome = self._txn.handle(verb, arg)
        if outcome is None:
            return r.err(r.WRONG_STATE if verb in KNOWN_VERBS else r.UNKNOWN_COMMAND)
        return outcome

    def _capa(self, arg: str) -> Reply:
        """RFC 2449 §5: the capabilities of the current state."""
        if arg.strip(" "):
            return r.err(r.NO_ARGUMENTS)
        lines = ["TOP", "UIDL"]
        if self._state is Pop3State.AUTHORIZATION:
            lines += self._auth.capabilities()
        lines += [
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            f"IMPLEMENTATION {self._settings.implementation}",
        ]
        return r.multiline(r.CAPABILITIES, lines)

    def _logged_in(self, decision: DecideLogin, result: LoginResult) -> Reply:
        if result.ok and result.maildrop is not None:
            self._txn = Transaction(result.maildrop)
            self._state = Pop3State.TRANSACTION
            self._username = decision.username
            count, octets = self._txn.drop.totals()
            return r.ok(r.LOGGED_IN.format(count=count, octets=octets))
        if result.in_use:
            return r.err(r.IN_USE, Code.IN_USE, fault=False)
        if result.error is not None:
            return r.err(result.error, Code.SYS_TEMP, fault=False)
        self._failures += 1
        # RFC 5034 §4 / RFC 3206: the failure says [AUTH]; enough of them and we hang up.
        return r.err(
            r.AUTH_FAILED, Code.AUTH, fault=False, close=self._failures >= self._settings.max_failures
        )

    def _committed(self, error: str | None) -> Reply:
        if error is None:
            return r.ok(r.BYE, close=True)
        # RFC 1939 §6: "-ERR some deleted messages not removed"; the session ends anyway.
        return r.err(error or r.COMMIT_FAILED, Code.SYS_TEMP, fault=False, close=True)
