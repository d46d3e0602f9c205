"""POP3 replies: status lines, multi-line responses, response codes, and the texts we send.

RFC 1939 §3: a reply is "+OK" or "-ERR", a space and text, CRLF; a multi-line reply ends with a
line holding only ".", and any line starting with "." is byte-stuffed. RFC 2449 §8 puts an
extended response code in brackets right after "-ERR"; RFC 3206 adds [SYS/…] and [AUTH].
The texts live here so that tests assert the same constants the engine sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from courriel.proto.pop3.wire import dot_stuff


class Code(StrEnum):
    AUTH = "AUTH"  # RFC 3206 §5: credentials or policy
    SYS_TEMP = "SYS/TEMP"  # RFC 3206 §4: our fault, try again later
    IN_USE = "IN-USE"  # RFC 2449 §8.1.2: maildrop locked by another session


@dataclass(frozen=True)
class Reply:
    """The engine's answer to one command line.

    `fault`: the client sent something wrong; counts toward `max_errors`. `close`: close the
    connection after sending. `start_tls`: begin the TLS handshake after sending.
    """

    data: bytes
    fault: bool = False
    close: bool = False
    start_tls: bool = False


def _line(text: str) -> bytes:
    # Texts may come from the store (LoginResult.error): keep them on one line and bounded.
    clean = " ".join(text.split())[:200]
    return clean.encode("utf-8") + b"\r\n"


def ok(text: str = "", *, close: bool = False, start_tls: bool = False) -> Reply:
    data = b"+OK " + _line(text) if text else b"+OK\r\n"
    return Reply(data, close=close, start_tls=start_tls)


def err(text: str, code: Code | None = None, *, fault: bool = True, close: bool = False) -> Reply:
    prefix = f"[{code}] " if code is not None else ""
    return Reply(b"-ERR " + _line(prefix + text), fault=fault, close=close)


def multiline(first: str, lines: Iterable[str]) -> Reply:
    body = b"".join(line.encode("utf-8") + b"\r\n" for line in lines)
    return Reply(b"+OK " + _line(first) + dot_stuff(body))


def continuation() -> Reply:
    """The empty SASL server challenge, "+ " (RFC 5034 §4)."""
    return Reply(b"+ \r\n")


# Texts sent to clients.
BYE = "Bye"
LOGGED_IN = "Logged in, {count} messages ({octets} octets)"
AUTH_FAILED = "Authentication failed"
IN_USE = "Maildrop is locked by another session"
TLS_REQUIRED = "Plaintext login is disabled; use STLS first"
UNKNOWN_COMMAND = "Unknown command"
WRONG_STATE = "Command not valid in this state"
LINE_TOO_LONG = "Line too long"
BAD_ENCODING = "Command is not valid UTF-8"
BAD_CHARACTERS = "Command contains control characters"
NO_ARGUMENTS = "This command takes no arguments"
TOO_MANY_ERRORS = "Too many errors, closing connection"
# STAT/LIST/RETR/…
NO_SUCH_MESSAGE = "No such message"
ALREADY_DELETED = "Message {number} already deleted"
BAD_NUMBER = "Invalid message number"
BAD_LINE_COUNT = "Invalid line count"
MESSAGE_GONE = "Message is no longer available"
DELETED = "Message {number} deleted"
MAILDROP = "Maildrop has {count} messages ({octets} octets)"
SCAN_LISTING = "{count} messages ({octets} octets)"
UIDL_LISTING = "Unique-ID listing follows"
OCTETS = "{octets} octets"
COMMIT_FAILED = "Some deleted messages were not removed"
# USER/PASS/AUTH/STLS
USER_ACCEPTED = "Send PASS"
MISSING_USER = "USER requires a user name"
MISSING_PASSWORD = "PASS requires a password"
USER_FIRST = "Send USER first"
MECHANISMS = "Supported mechanisms follow"
UNSUPPORTED_MECHANISM = "Unsupported authentication mechanism"
AUTH_CANCELLED = "Authentication cancelled"
AUTHZID_REFUSED = "Authorization identity not permitted"
BEGIN_TLS = "Begin TLS negotiation"
TLS_UNAVAILABLE = "STLS is not available"
TLS_ACTIVE = "Command not permitted when TLS active"  # wording of RFC 2595 §4
CAPABILITIES = "Capability list follows"
