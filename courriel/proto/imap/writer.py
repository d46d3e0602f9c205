"""Serialise IMAP responses to bytes: strings, lists, flags, FETCH lines, status responses.

RFC 9051 §4 (data formats) and §7 (responses). A string goes out quoted when it can and as a
literal when it must: CR, LF or 8-bit data force a literal (RFC 9051 §4.3; with UTF8=ACCEPT,
valid UTF-8 may stay quoted, RFC 6855 §3), NUL forces literal8 where the client asked BINARY
(RFC 3516 §4.3). Everything is built with bytes joins and %-formatting; the hot paths (FETCH
lines, flag lists) avoid per-item type checks so 10,000 FETCH lines take a few milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Final

NIL: Final = b"NIL"
CRLF: Final = b"\r\n"
CONTINUE_LITERAL: Final = b"+ Ready for literal data\r\n"

# Bytes that a quoted string cannot carry (RFC 9051 §9 QUOTED-CHAR): NUL, CR, LF, 8-bit.
_NOT_QUOTABLE: Final = re.compile(rb"[\x00\r\n\x80-\xff]")
# ATOM-CHAR (RFC 9051 §9): anything but atom-specials, CTL and 8-bit.
_ATOM: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_ATOM_STR: Final = re.compile(r'[^\x00-\x20\x7f-\U0010ffff(){%*"\\\]]+')
_TEXT_UNSAFE: Final = re.compile(r"[\r\n\x00]")
_MONTHS: Final = (
    b"Jan",
    b"Feb",
    b"Mar",
    b"Apr",
    b"May",
    b"Jun",
    b"Jul",
    b"Aug",
    b"Sep",
    b"Oct",
    b"Nov",
    b"Dec",
)


def literal(data: bytes, binary: bool = False) -> bytes:
    """A literal, or literal8 (`~{n}`) for BINARY data (RFC 3516 §4.3)."""
    return literal_head(data, binary) + data


def literal_head(data: bytes, binary: bool = False) -> bytes:
    """What goes before a literal's bytes: a caller that writes the bytes itself (a FETCH body)
    does not copy them into a new string first."""
    return (b"~{%d}\r\n" if binary else b"{%d}\r\n") % len(data)


def quoted(data: bytes) -> bytes:
    if b"\\" in data or b'"' in data:
        data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + data + b'"'


def string(value: str | bytes, utf8: bool = False) -> bytes:
    """The shortest correct form of an IMAP string: quoted, else a literal.

    NULs are dropped: string literals are CHAR8 (RFC 9051 §9), and a string that needs them is
    binary content for `literal(data, binary=True)`, not a string."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if _NOT_QUOTABLE.search(data) is None:
        return quoted(data)
    if utf8 and not data.isascii() and b"\r" not in data and b"\n" not in data and b"\x00" not in data:
        try:
            data.decode("utf-8")
            return quoted(data)
        except UnicodeDecodeError:
            pass
    if b"\x00" in data:
        data = data.replace(b"\x00", b"")
    return literal(data)


def nstring(value: str | bytes | None, utf8: bool = False) -> bytes:
    return NIL if value is None else string(value, utf8)


def astring(value: str | bytes, utf8: bool = False) -> bytes:
    """An atom when the value is one (mailbox names, header field names), else a string."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if _ATOM.fullmatch(data) and data.upper() != b"NIL":
        return data
    return string(data, utf8)


def plist(items: Iterable[bytes]) -> bytes:
    """A parenthesised list of already-serialised items."""
    return b"(" + b" ".join(items) + b")"


@lru_cache(maxsize=4096)
def flag_list(flags: tuple[str, ...]) -> bytes:
    """(\\Seen $Forwarded): flags are atoms by construction (the parser only admits atoms);
    cached because a mailbox has few distinct flag combinations."""
    return b"(" + " ".join(flags).encode("ascii", "replace") + b")"


def flags(flags: Iterable[str]) -> bytes:
    return flag_list(tuple(flags))


def date_time(when: datetime) -> bytes:
    """RFC 9051 §9 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (date-day-fixed: space padded)."""
    offset = when.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    sign = b"-" if minutes < 0 else b"+"
    minutes = abs(minutes)
    return b'"%2d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (
        when.day,
        _MONTHS[when.month - 1],
        when.year,
        when.hour,
        when.minute,
        when.second,
        sign,
        minutes // 60,
        minutes % 60,
    )


def text(value: str) -> bytes:
    """resp-text text (RFC 9051 §9): 1*TEXT-CHAR, so CR/LF/NUL become spaces."""
    if _TEXT_UNSAFE.search(value):
        value = _TEXT_UNSAFE.sub(" ", value)
    return value.encode("utf-8", "replace")


def _resp_text(code: str | bytes | None, message: str) -> bytes:
    if code is None:
        return text(message)
    raw = code.encode("utf-8") if isinstance(code, str) else code
    return b"[" + raw + b"] " + text(message)


def tagged(tag: str, status: str, message: str, code: str | bytes | None = None) -> bytes:
    """`tag OK|NO|BAD [code] text` (RFC 9051 §7.1)."""
    return b"%s %s %s\r\n" % (tag.encode("ascii"), status.encode("ascii"), _resp_text(code, message))


def untagged_status(status: str, message: str, code: str | bytes | None = None) -> bytes:
    """`* OK|NO|BAD|BYE|PREAUTH [code] text` (RFC 9051 §7.1)."""
    return b"* %s %s\r\n" % (status.encode("ascii"), _resp_text(code, message))


def untagged(data: bytes) -> bytes:
    """`* data` for server data responses that the caller has already serialised."""
    return b"* " + data + CRLF


def continuation(message: str = "Ready for literal data") -> bytes:
    """`+ text` (RFC 9051 §7.6); SASL challenges use `continuation_data`."""
    return b"+ " + text(message) + CRLF


def continuation_data(base64_challenge: bytes) -> bytes:
    """`+ base64` for an AUTHENTICATE challenge (RFC 9051 §6.2.2)."""
    return b"+ " + base64_challenge + CRLF


def fetch(seq: int, items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """`* seq FETCH (NAME value …)`; names and values are already serialised."""
    return b"* %d FETCH (%s)\r\n" % (seq, b" ".join([name + b" " + value for name, value in items]))


def fetch_joined(seq: int, body: bytes) -> bytes:
    """`* seq FETCH (body)` when the caller built "NAME value NAME value" itself (fastest)."""
    return b"* %d FETCH (%s)\r\n" % (seq, body)


def exists(count: int) -> bytes:
    return b"* %d EXISTS\r\n" % count


def expunge(seq: int) -> bytes:
    return b"* %d EXPUNGE\r\n" % seq


def vanished(uid_set: str, earlier: bool = False) -> bytes:
    """`* VANISHED [(EARLIER)] set` (RFC 7162 §3.2.10)."""
    return b"* VANISHED %s%s\r\n" % (b"(EARLIER) " if earlier else b"", uid_set.encode("ascii"))


def capability(caps: Iterable[str]) -> bytes:
    return b"* CAPABILITY " + " ".join(caps).encode("ascii") + CRLF


def search(numbers: Iterable[int], modseq: int | None = None) -> bytes:
    """`* SEARCH 2 3 7` with `(MODSEQ n)` after a MODSEQ search (RFC 7162 §3.1.5)."""
    body = " ".join(map(str, numbers)).encode("ascii")
    if modseq is not None:
        body += b" (MODSEQ %d)" % modseq
    return b"* SEARCH " + body + CRLF if body else b"* SEARCH\r\n"


def esearch(tag: str, uid: bool, results: Iterable[tuple[str, str]]) -> bytes:
    """`* ESEARCH (TAG "t") [UID] MIN 1 COUNT 3 …` (RFC 4731 §3.1, RFC 9051 §7.3.4)."""
    parts = [b'(TAG "%s")' % tag.encode("ascii")]
    if uid:
        parts.append(b"UID")
    parts.extend(b"%s %s" % (name.encode("ascii"), value.encode("ascii")) for name, value in results)
    return b"* ESEARCH " + b" ".join(parts) + CRLF


def list_line(
    kind: str, attributes: Iterable[str], delimiter: str | None, name: bytes, extra: bytes = b""
) -> bytes:
    """`* LIST (\\HasNoChildren) "/" name` (kind LIST or LSUB); `extra` carries RFC 5258
    extended data such as ` ("CHILDINFO" ("SUBSCRIBED"))`. `name` is serialised already
    (`astring` of the wire name)."""
    delim = NIL if delimiter is None else quoted(delimiter.encode("ascii"))
    attrs = " ".join(attributes).encode("ascii")
    return b"* %s (%s) %s %s%s\r\n" % (kind.encode("ascii"), attrs, delim, name, extra)


def status_line(name: bytes, items: Iterable[tuple[str, int]]) -> bytes:
    """`* STATUS name (MESSAGES 3 UIDNEXT 9)` (RFC 9051 §7.2.4)."""
    body = " ".join(f"{k} {v}" for k, v in items).encode("ascii")
    return b"* STATUS %s (%s)\r\n" % (name, body)


def atom_or_quoted(value: str) -> bytes:
    """For keyword-like values that are usually atoms (ID response fields, CHILDINFO)."""
    return value.encode("ascii") if _ATOM_STR.fullmatch(value) else string(value)


def binary(data: bytes) -> bytes:
    """BINARY[…] content: literal8 when it holds NUL (RFC 3516 §4.3 requires it then) or other
    8-bit data (as Dovecot does), else an ordinary literal."""
    return literal(data, binary=binary_needs_literal8(data))


def binary_needs_literal8(data: bytes) -> bool:
    return not data.isascii() or b"\x00" in data
