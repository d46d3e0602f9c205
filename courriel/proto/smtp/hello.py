"""Opening a session: the 220 greeting, EHLO/HELO with the capability list, and STARTTLS.

Follows RFC 5321 §3.1 (greeting; a refused connection is answered 554 and then only QUIT is
served, or 421 and closed), §4.1.1.1 (EHLO/HELO, which reset any transaction, §4.1.4), the
extensions' EHLO keywords (RFC 2920, 1870, 6152, 6531, 2034, 3461, 3030, 3207, 4954) and
RFC 3207 for STARTTLS: input pipelined after STARTTLS is thrown away (CVE-2011-0411) and
everything learnt before the handshake is forgotten (§4.2).
"""

from __future__ import annotations

from email.utils import formatdate

from courriel.core.replies import (
    BAD_ARGUMENTS,
    NOT_IMPLEMENTED,
    READY_FOR_TLS,
    TLS_ALREADY_ACTIVE,
    Reply,
)

from .commands import Command
from .events import DecideHelo, StartTLS
from .state import Mode, SessionState

MAX_HELO_NAME = 255  # RFC 5321 §4.5.3.1.2 (a domain); address literals are shorter


class HelloCommands(SessionState):
    """Greeting, EHLO/HELO and STARTTLS."""

    def _greet(self, reply: Reply | None) -> None:
        """Answer of the connect decision; only 220, 554 and 421 are valid here (RFC 5321 §3.1)."""
        if reply is None or reply.is_positive:
            self._reply(reply if reply is not None else self._banner())
        elif reply.is_transient:
            self._reply(Reply(421, reply.enhanced, reply.text))
        else:
            # RFC 5321 §3.1: after 554 the server waits for QUIT and answers 503 meanwhile.
            self._reply(Reply(554, reply.enhanced, reply.text))
            self._rejected = True

    def _banner(self) -> Reply:
        settings = self.settings
        text = settings.banner or (
            f"{settings.fqdn} Courriel ESMTP MAIL service ready at {formatdate(localtime=True)}"
        )
        return Reply(220, None, text)

    def _hello(self, command: Command) -> None:
        name = command.arg
        if not name or len(name) > MAX_HELO_NAME or any(c.isspace() for c in name):
            self._fail(BAD_ARGUMENTS)
            return
        extended = command.verb == "EHLO"
        self._decide(
            DecideHelo(self.info(), name),
            lambda reply: self._hello_decided(name, extended, reply),
        )

    def _hello_decided(self, name: str, extended: bool, reply: Reply | None) -> None:
        if reply is not None and not reply.is_positive:
            self._reply(reply)
            return
        self._reset_transaction()  # RFC 5321 §4.1.4: like RSET
        self._helo, self._esmtp = name, extended
        greeting = reply.text.split("\n")[0] if reply else f"{self.settings.fqdn} Hello [{self.peer[0]}]"
        lines = [greeting, *self._capabilities()] if extended else [greeting]
        # RFC 2034 §3: no enhanced status code on the EHLO/HELO reply.
        self._reply(Reply(250, None, "\n".join(lines)))

    def _capabilities(self) -> list[str]:
        settings = self.settings
        caps = []
        if settings.pipelining:
            caps.append("PIPELINING")
        caps.append(f"SIZE {settings.max_message_size}" if settings.max_message_size else "SIZE")
        caps.append("8BITMIME")
        if settings.smtputf8:
            caps.append("SMTPUTF8")
        caps.append("ENHANCEDSTATUSCODES")
        if settings.dsn:
            caps.append("DSN")
        if settings.chunking:
            caps += ["BINARYMIME", "CHUNKING"]
        if settings.tls_available and not self._tls_active:
            caps.append("STARTTLS")
        if self._auth_offered():
            caps.append("AUTH " + " ".join(settings.auth_mechanisms))
        return caps

    def _starttls(self, command: Command) -> None:
        if not self.settings.tls_available:
            self._fail(NOT_IMPLEMENTED)
        elif command.arg:
            self._fail(BAD_ARGUMENTS)  # RFC 3207 §4: STARTTLS takes no parameter
        elif self._tls_active:
            self._fail(TLS_ALREADY_ACTIVE)
        else:
            self._reply(READY_FOR_TLS)
            self._emit(StartTLS())
            self._mode = Mode.TLS
            self._input.clear()  # CVE-2011-0411: plaintext pipelined after STARTTLS is not obeyed

    def _tls_established(self) -> None:
        """RFC 3207 §4.2: forget EHLO, AUTH and any transaction; the client starts again."""
        self._tls_active = True
        self._helo, self._esmtp, self._user = None, False, None
        self._reset_transaction()
        self._input.clear()
        self._mode = Mode.COMMAND
