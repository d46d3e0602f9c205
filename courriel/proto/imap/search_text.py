"""Decoded, case-folded text of a message for SEARCH TEXT, BODY, SUBJECT, FROM, HEADER …

RFC 9051 §6.4.4: string keys match substrings case-insensitively, and servers should match
decoded MIME text: RFC 2047 encoded words in headers, quoted-printable and base64 bodies, any
charset. `searchable_text` is pure so the store can compute it once at delivery and persist it;
`text_matches` and `header_matches` answer one key against it.

The headers text holds one line per field, "name: decoded value", so a header key can look at
its own field. The body text joins every text/* part (HTML with its tags and scripts removed)
and, for attached messages, their subject and addresses and their text parts.
"""

from __future__ import annotations

import codecs
import email.header
import html
import re
from typing import Final

from courriel.proto.imap.errors import SectionError
from courriel.proto.imap.mime import Part, content_encoding, header_value, scan, unfold
from courriel.proto.imap.sections import decode_transfer

#: Bound on the decoded body text kept per message; enough for any human-written mail.
MAX_BODY_CHARS: Final = 2_000_000

_SCRIPT: Final = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG: Final = re.compile(r"<[^>]*>")
_COMMENT: Final = re.compile(r"<!--.*?-->", re.DOTALL)
_ENCODED_WORD: Final = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_INNER_HEADERS: Final = ("subject", "from", "to", "cc")


def normalise(text: str) -> str:
    """Case-fold and collapse white space: the form both sides of a match are put in.
    (str.split() splits on exactly the characters the regex \\s matches, several times faster.)"""
    return " ".join(text.casefold().split())


def _charset_decode(data: bytes, charset: str | None) -> str:
    name = (charset or "utf-8").strip().lower()
    if name in ("us-ascii", "ascii", ""):
        name = "utf-8"  # 8-bit under a US-ASCII label is nearly always UTF-8
    try:
        codecs.lookup(name)
    except LookupError:
        name = "utf-8"
    return data.decode(name, "replace")


def decode_header_value(raw: bytes) -> str:
    """RFC 2047 encoded words decoded; undecodable words kept as they are."""
    text = raw.decode("utf-8", "replace")
    if "=?" not in text or not _ENCODED_WORD.search(text):
        return text
    try:
        pieces = email.header.decode_header(text)
    except (ValueError, LookupError, AssertionError):
        return text
    out: list[str] = []
    for chunk, charset in pieces:
        if isinstance(chunk, bytes):
            out.append(_charset_decode(chunk, charset))
        else:
            out.append(chunk)
    return "".join(out)


def _strip_html(text: str) -> str:
    text = _SCRIPT.sub(" ", text)
    text = _COMMENT.sub(" ", text)
    return html.unescape(_TAG.sub(" ", text))


def _part_text(data: bytes, part: Part) -> str:
    try:
        raw = decode_transfer(data[part.body_start : part.end], content_encoding(data, part.headers))
    except SectionError:
        return ""
    charset = part.param(b"charset")
    text = _charset_decode(raw, charset.decode("ascii", "replace") if charset else None)
    return _strip_html(text) if part.is_type(b"text", b"html") else text


def _collect(data: bytes, part: Part, out: list[str], budget: list[int]) -> None:
    if budget[0] <= 0:
        return
    if part.children:
        for child in part.children:
            _collect(data, child, out, budget)
        return
    message = part.message
    if message is not None:
        for name in _INNER_HEADERS:
            value = header_value(data, message.headers, name)
            if value:
                out.append(decode_header_value(value))
        _collect(data, message, out, budget)
        return
    if part.is_type(b"text"):
        text = _part_text(data, part)[: budget[0]]
        budget[0] -= len(text)
        out.append(text)


def searchable_text(message: bytes, root: Part | None = None) -> tuple[str, str]:
    """(headers, body) of a message, decoded and normalised for matching."""
    tree = root if root is not None else scan(message)
    lines = [
        f"{h.name}: {normalise(decode_header_value(unfold(message[h.value_start : h.end])))}"
        for h in tree.headers
    ]
    chunks: list[str] = []
    _collect(message, tree, chunks, [MAX_BODY_CHARS])
    return "\n".join(lines), normalise(" ".join(chunks))


def text_matches(needle: str, haystack: str) -> bool:
    """Substring match of a SEARCH string against normalised text (RFC 9051 §6.4.4)."""
    return normalise(needle) in haystack


def header_matches(headers: str, name: str, needle: str) -> bool:
    """HEADER name value, FROM, TO, CC, BCC, SUBJECT: a match within that field only. An empty
    value matches any message that has the field (RFC 9051 §6.4.4)."""
    prefix = name.lower() + ": "
    want = normalise(needle)
    return any(line.startswith(prefix) and want in line[len(prefix) :] for line in headers.split("\n"))
