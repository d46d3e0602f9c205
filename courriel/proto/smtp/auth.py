"""AUTH (RFC 4954) with the SASL mechanisms PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login).

`SaslExchange` is the mechanism alone: it takes decoded client responses and returns the next
challenge or the credentials. `AuthCommands` is the SMTP side: when AUTH may be used (only after
EHLO, once, outside a transaction, RFC 4954 §4; only under TLS when the connector says so, §6:
538), base64 framing, `*` to cancel (501 5.0.0), undecodable responses (501 5.5.2), and the count
of failed exchanges against `max_logon_failures`. Checking the password is the policy's job.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from courriel.core.replies import (
    ALREADY_AUTHENTICATED,
    AUTH_BAD_RESPONSE,
    AUTH_CANCELLED,
    AUTH_ENCRYPTION_REQUIRED,
    AUTH_IN_TRANSACTION,
    AUTH_MECHANISM_UNKNOWN,
    BAD_ARGUMENTS,
    NEED_EHLO,
    NOT_IMPLEMENTED,
    TEMP_FAILURE,
    Reply,
)

from .commands import Command, ReplyError
from .events import DecideAuth
from .state import Mode, SessionState


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the client proved it knows, for the policy to check."""

    authzid: str | None
    username: str
    password: str


class SaslExchange:
    """One server-side SASL exchange for PLAIN or LOGIN; raises ReplyError on a bad response."""

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self._username: str | None = None

    def start(self, initial: bytes | None) -> bytes | Credentials:
        """Begin with the optional initial response; returns a challenge or the credentials."""
        if initial is None:
            # RFC 4616 §2: PLAIN starts with an empty challenge; LOGIN asks for the user name.
            return b"" if self.mechanism == "PLAIN" else b"Username:"
        return self.step(initial)

    def step(self, response: bytes) -> bytes | Credentials:
        if self.mechanism == "PLAIN":
            return _plain(response)
        text = _text(response)
        if self._username is None:
            self._username = text
            return b"Password:"
        return Credentials(None, self._username, text)


def _plain(message: bytes) -> Credentials:
    """RFC 4616 §2: [authzid] NUL authcid NUL passwd, all UTF-8."""
    parts = message.split(b"\0")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise ReplyError(AUTH_BAD_RESPONSE)
    authzid, username, password = (_text(part) for part in parts)
    return Credentials(authzid or None, username, password)


def _text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ReplyError(AUTH_BAD_RESPONSE) from None
    if "\0" in text:
        raise ReplyError(AUTH_BAD_RESPONSE)
    return text


def decode_response(text: str, *, initial: bool = False) -> bytes:
    """A base64 client response; `*` cancels, `=` is an empty initial response (RFC 4954 §4)."""
    if text == "*":
        raise ReplyError(AUTH_CANCELLED)
    if initial and text == "=":
        return b""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ReplyError(AUTH_BAD_RESPONSE) from None


class AuthCommands(SessionState):
    """The AUTH command and the SASL responses that follow it."""

    _sasl: SaslExchange | None = None

    def _auth(self, command: Command) -> None:
        settings = self.settings
        if not self._auth_offered():
            needs_tls = bool(settings.auth_mechanisms) and not self._tls_active
            self._fail(AUTH_ENCRYPTION_REQUIRED if needs_tls else NOT_IMPLEMENTED)  # RFC 4954 §6
            return
        words = command.arg.split()
        if not self._esmtp:
            self._fail(NEED_EHLO)
        elif self._user is not None:
            self._fail(ALREADY_AUTHENTICATED)  # RFC 4954 §4
        elif self._txn is not None:
            self._fail(AUTH_IN_TRANSACTION)  # RFC 4954 §4
        elif len(words) not in (1, 2):
            self._fail(BAD_ARGUMENTS)
        elif words[0].upper() not in settings.auth_mechanisms:
            self._fail(AUTH_MECHANISM_UNKNOWN)  # RFC 4954 §4: 504
        else:
            self._sasl = SaslExchange(words[0].upper())
            try:
                initial = decode_response(words[1], initial=True) if len(words) == 2 else None
                self._advance(self._sasl.start(initial))
            except ReplyError as error:
                self._abandon(error.reply)

    def _sasl_response(self, line: bytes) -> None:
        self._trace_line("****")
        exchange = self._sasl
        if exchange is None:  # cannot happen: SASL mode is only entered with an exchange
            self._mode = Mode.COMMAND
            return
        try:
            self._advance(exchange.step(decode_response(line.decode("latin-1").strip())))
        except ReplyError as error:
            self._abandon(error.reply)

    def _advance(self, result: bytes | Credentials) -> None:
        if isinstance(result, bytes):
            self._mode = Mode.SASL
            self._reply(Reply(334, None, base64.b64encode(result).decode("ascii")))
            return
        self._mode = Mode.COMMAND
        mechanism = self._sasl.mechanism if self._sasl else ""
        self._sasl = None
        self._decide(
            DecideAuth(self.info(), mechanism, result.authzid, result.username, result.password),
            lambda reply: self._auth_decided(result.username, reply),
        )

    def _abandon(self, reply: Reply) -> None:
        self._mode = Mode.COMMAND
        self._sasl = None
        self._logon_failed(reply)

    def _auth_decided(self, username: str, reply: Reply | None) -> None:
        reply = reply if reply is not None else TEMP_FAILURE  # fail closed
        if reply.is_positive:
            self._user = username
            self._reply(reply)
        elif reply.is_permanent:
            self._logon_failed(reply)
        else:
            self._reply(reply)  # e.g. 454 4.7.0: the directory is down, not the client's fault
