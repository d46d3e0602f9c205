"""Command-line parsing for the SMTP engine: verb and argument, and the reverse/forward paths.

A command line arrives without its line ending. Parsing follows RFC 5321 §4.1: the verb is
case-insensitive, MAIL and RCPT carry a path in angle brackets followed by ESMTP parameters
(§4.1.2), source routes are accepted and ignored (§4.1.1.3, §C), and `RCPT TO:<Postmaster>`
needs no domain (§4.1.1.3). Every failure raises `ReplyError` with the reply to send, never
a message that echoes the client's bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from courriel.core.address import Address, AddressError, parse_address
from courriel.core.replies import BAD_ARGUMENTS, SYNTAX_ERROR, Reply

_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_VERB = re.compile(r"[A-Za-z]{1,16}\Z")
# A path: quoted strings may hold "<", ">" and spaces; anything else stops at them.
_PATH = re.compile(r'<((?:"(?:[^"\\]|\\.)*"|[^<>"\s])*)>')
_SOURCE_ROUTE = re.compile(r"@[^,:@]+(?:,@[^,:@]+)*:")


class ReplyError(Exception):
    """Input the engine refuses; `reply` is what goes on the wire.

    `protocol_error` is False for refusals that are no fault of the client's (a declared SIZE
    over our limit), which do not count against `max_protocol_errors`.
    """

    def __init__(self, reply: Reply, *, protocol_error: bool = True) -> None:
        super().__init__(reply.text)
        self.reply = reply
        self.protocol_error = protocol_error


@dataclass(frozen=True, slots=True)
class Command:
    """A command line split into its upper-cased verb and the rest (leading space removed)."""

    verb: str
    arg: str


def parse_command(line: bytes) -> Command:
    """Split a command line; control characters or bytes that are not UTF-8 are a syntax error."""
    if _CONTROL.search(line):
        raise ReplyError(SYNTAX_ERROR)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ReplyError(SYNTAX_ERROR) from None
    verb, _, arg = text.partition(" ")
    if not _VERB.match(verb):
        raise ReplyError(SYNTAX_ERROR)
    return Command(verb.upper(), arg.strip(" \t"))


def split_path(arg: str, keyword: str) -> tuple[str, list[str]]:
    """Split `FROM:<path> params` (or `TO:`) into the bare path and the parameter tokens.

    A space after the colon is tolerated, as most servers do for old clients; missing angle
    brackets are not (RFC 5321 §4.1.2 makes them part of the syntax).
    """
    head = keyword + ":"
    if arg[: len(head)].upper() != head:
        raise ReplyError(BAD_ARGUMENTS)
    rest = arg[len(head) :].lstrip(" ")
    match = _PATH.match(rest)
    if match is None:
        raise ReplyError(BAD_ARGUMENTS)
    tail = rest[match.end() :]
    if tail and not tail[0].isspace():
        raise ReplyError(BAD_ARGUMENTS)
    path = match.group(1)
    route = _SOURCE_ROUTE.match(path)
    if route is not None:
        path = path[route.end() :]  # RFC 5321 §4.1.1.3: accept and ignore the source route
    return path, tail.split()


def parse_reverse_path(path: str, error: Reply) -> Address | None:
    """The MAIL FROM path: `<>` is the null sender of bounces (RFC 5321 §4.5.5)."""
    if not path:
        return None
    return _mailbox(path, error)


def parse_forward_path(path: str, fqdn: str, error: Reply) -> Address:
    """The RCPT TO path; a bare `Postmaster` means our postmaster (RFC 5321 §4.1.1.3)."""
    if path.lower() == "postmaster":
        return Address(path, fqdn.lower())
    return _mailbox(path, error)


def _mailbox(path: str, error: Reply) -> Address:
    try:
        return parse_address(path)
    except AddressError:
        raise ReplyError(error) from None
