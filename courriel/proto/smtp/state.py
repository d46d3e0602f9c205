"""The state every SMTP command family shares, and the primitives they answer with.

`SessionState` holds what RFC 5321 §4.1.4 and its extensions make a session remember: the
EHLO/HELO name, TLS and AUTH state, the open mail transaction, the error counters, and the
input and output buffers of the sans-I/O interface. The command families (`hello`, `auth`,
`transaction`) are mixins over it and `session.SmtpSession` drives them; replies go through
`_reply` (coalesced into one `Send` per batch) and questions through `_decide`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from courriel.core.address import Address
from courriel.core.ids import new_id
from courriel.core.replies import TOO_MANY_ERRORS, TOO_MANY_LOGON_FAILURES, Reply

from .events import Action, Close, Decision, Send, SessionInfo, Trace
from .params import MailParams, RcptParams
from .settings import SessionSettings


class Mode(enum.Enum):
    """What the next input octets are."""

    COMMAND = "command"  # command lines
    SASL = "sasl"  # AUTH responses (RFC 4954 §4)
    DATA = "data"  # a DATA body up to CRLF.CRLF
    CHUNK = "chunk"  # the octets of a BDAT chunk (RFC 3030 §2)
    TLS = "tls"  # after 220 to STARTTLS, until tls_started(): input is discarded
    CLOSED = "closed"


@dataclass(slots=True)
class Transaction:
    """A mail transaction opened by an accepted MAIL (RFC 5321 §3.3)."""

    sender: Address | None
    params: MailParams
    recipients: list[tuple[Address, RcptParams]] = field(default_factory=list)
    chunks: bytearray | None = None
    """The BDAT body so far; None until the first BDAT (then DATA is refused, RFC 3030 §2)."""
    oversized: bool = False
    """A BDAT chunk went over the size limit: the rest is read and discarded."""


Continuation = Callable[[Reply | None], None]


class SessionState:
    """Shared state and answer primitives of one SMTP session (see `SmtpSession`)."""

    def __init__(
        self,
        settings: SessionSettings,
        peer: tuple[str, int],
        *,
        trace: bool = False,
        authenticated_server: str | None = None,
    ) -> None:
        self.settings = settings
        self.peer = peer
        self.session_id = new_id()
        self._trace = trace
        self._mode = Mode.COMMAND
        self._input = bytearray()
        self._skipping_line = False
        self._actions: list[Action] = []
        self._replies = bytearray()
        self._pending: tuple[Decision, Continuation] | None = None
        self._helo: str | None = None
        self._esmtp = False
        self._tls_active = settings.tls_active
        self._user: str | None = None
        self._server = authenticated_server if settings.tls_active else None
        self._txn: Transaction | None = None
        self._errors = 0
        self._logon_failures = 0
        self._rejected = False

    # -- read-only views -------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._mode is Mode.CLOSED

    @property
    def in_transaction(self) -> bool:
        """A MAIL was accepted and its message is not finished (the I/O layer's shutdown asks)."""
        return self._txn is not None or self._mode in (Mode.DATA, Mode.CHUNK)

    @property
    def awaiting_decision(self) -> bool:
        return self._pending is not None

    def info(self) -> SessionInfo:
        return SessionInfo(
            session_id=self.session_id,
            connector=self.settings.connector,
            peer_ip=self.peer[0],
            peer_port=self.peer[1],
            helo=self._helo,
            esmtp=self._esmtp,
            tls_active=self._tls_active,
            authenticated=self._user,
            authenticated_server=self._server,
        )

    def _auth_offered(self) -> bool:
        """AUTH is advertised and accepted (RFC 4954 §4; Exchange BasicAuthRequireTLS)."""
        settings = self.settings
        return bool(settings.auth_mechanisms) and (self._tls_active or not settings.auth_requires_tls)

    # -- answering ---------------------------------------------------------------------

    def _reply(self, reply: Reply) -> None:
        """Queue a reply; a 421 also closes the session (RFC 5321 §3.8)."""
        if self._mode is Mode.CLOSED:
            return
        self._replies += reply.encode()
        if reply.closes:
            self._close()

    def _emit(self, action: Action) -> None:
        if self._replies:
            self._actions.append(Send(bytes(self._replies)))
            self._replies.clear()
        self._actions.append(action)

    def _close(self) -> None:
        self._emit(Close())
        self._mode = Mode.CLOSED
        self._pending = None
        self._input.clear()
        self._txn = None

    def _take(self) -> list[Action]:
        if self._replies:
            self._actions.append(Send(bytes(self._replies)))
            self._replies.clear()
        actions, self._actions = self._actions, []
        return actions

    def _fail(self, reply: Reply) -> None:
        """Answer a protocol error and count it; too many end the session."""
        self._reply(reply)
        self._errors += 1
        limit = self.settings.max_protocol_errors
        if limit and self._errors >= limit:
            self._reply(TOO_MANY_ERRORS)

    def _logon_failed(self, reply: Reply) -> None:
        """Answer a failed AUTH exchange; too many end the session (password guessing)."""
        self._reply(reply)
        self._logon_failures += 1
        limit = self.settings.max_logon_failures
        if limit and self._logon_failures >= limit:
            self._reply(TOO_MANY_LOGON_FAILURES)

    def _decide(self, decision: Decision, then: Continuation) -> None:
        """Ask the policy; `then` runs with its answer and input waits until then."""
        self._emit(decision)
        self._pending = (decision, then)

    def _trace_line(self, line: str) -> None:
        if self._trace:
            self._emit(Trace(line))

    def _reset_transaction(self) -> None:
        self._txn = None
