"""BODY[section]<partial> and BINARY[section] content from a scanned message.

RFC 9051 §6.4.5 (section numbering: every message has a part 1; HEADER, HEADER.FIELDS[.NOT] and
TEXT after a part number need a message/rfc822 part; MIME is the part's own MIME header; the
blank line ends every header fetch; <origin.length> partial fetches), RFC 3516 §4 (BINARY:
the part decoded from its content-transfer-encoding; UNKNOWN-CTE when it cannot be).
A section that does not exist yields an empty string, as Dovecot answers.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from typing import Final

from courriel.proto.imap.errors import SectionError
from courriel.proto.imap.fetchatt import Section
from courriel.proto.imap.mime import Header, Part, content_encoding, header_block_end, parse_headers

IDENTITY_ENCODINGS: Final = frozenset({b"7bit", b"8bit", b"binary", b""})
HEADER_TEXTS: Final = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"})


def _numbered(part: Part, is_root: bool) -> list[Part] | None:
    """The parts that `n` in "part.n" counts: a multipart's children; for a message (the root
    or a message/rfc822 part) the children of its multipart body, or its body alone as part 1."""
    if part.children:
        return part.children
    if is_root:
        return [part]
    inner = part.message
    if inner is not None:
        return inner.children if inner.children else [inner]
    return None


def find_part(root: Part, path: tuple[int, ...]) -> Part | None:
    """The part that a section-part (1.2.3) names, or None when it does not exist."""
    node, is_root = root, True
    for n in path:
        numbered = _numbered(node, is_root)
        if numbered is None or n > len(numbered):
            return None
        node, is_root = numbered[n - 1], False
    return node


def header_fields(
    data: bytes, headers: list[Header], names: Iterable[str], exclude: bool, end: int, body_start: int
) -> bytes:
    """HEADER.FIELDS (or .NOT with `exclude`): the matching fields as sent, in message order,
    and the blank line when the header had one (RFC 9051 §6.4.5)."""
    wanted = {n.lower() for n in names}
    fields = [data[h.start : h.end] for h in headers if (h.name in wanted) != exclude]
    blank = data[end:body_start]
    return b"".join(fields) + blank


def _message_text(data: bytes, message: Part, section: Section) -> bytes:
    """HEADER / HEADER.FIELDS[.NOT] / TEXT of a message (root or encapsulated)."""
    if section.text == "TEXT":
        return data[message.body_start : message.end]
    header_end = header_block_end(data, message.start, message.end)[0]
    if section.text == "HEADER":
        return data[message.start : message.body_start]
    return header_fields(
        data,
        message.headers,
        section.fields,
        section.text == "HEADER.FIELDS.NOT",
        header_end,
        message.body_start,
    )


def section_content(data: bytes, root: Part, section: Section) -> bytes:
    """The bytes of BODY[section] before any partial range is applied."""
    if not section.part:
        if section.text is None:
            return data
        return _message_text(data, root, section)
    part = find_part(root, section.part)
    if part is None:
        return b""
    if section.text is None:
        return data[part.body_start : part.end]
    if section.text == "MIME":
        return data[part.start : part.body_start]
    # RFC 9051 §6.4.5: HEADER/TEXT after a part number only for message/rfc822 parts; part 1
    # of a single-part message is the message body, not a message.
    if part is root or part.message is None:
        return b""
    return _message_text(data, part.message, section)


def is_root_header(section: Section) -> bool:
    """BODY[HEADER], BODY[HEADER.FIELDS (…)] and .NOT: what a client's message list fetches."""
    return not section.part and section.text in HEADER_TEXTS


def root_header_content(data: bytes, section: Section) -> bytes:
    """`section_content` for an `is_root_header` section, from the header block alone: no MIME
    scan of the body, which would cost more than the fetch itself."""
    header_end, body_start = header_block_end(data, 0, len(data))
    if section.text == "HEADER":
        return data[:body_start]
    return header_fields(
        data,
        parse_headers(data, 0, header_end),
        section.fields,
        section.text == "HEADER.FIELDS.NOT",
        header_end,
        body_start,
    )


def partial(content: bytes, span: tuple[int, int] | None) -> bytes:
    """<origin.length>: a slice, empty when origin is past the end (RFC 9051 §6.4.5)."""
    if span is None:
        return content
    origin, length = span
    return content[origin : origin + length]


def decode_transfer(body: bytes, encoding: bytes) -> bytes:
    """Decode a body from its content-transfer-encoding; SectionError UNKNOWN-CTE otherwise."""
    enc = encoding.strip().lower()
    if enc in IDENTITY_ENCODINGS:
        return body
    if enc == b"base64":
        return decode_base64(body)
    if enc == b"quoted-printable":
        return binascii.a2b_qp(body)
    raise SectionError("Unknown Content-Transfer-Encoding", code="UNKNOWN-CTE")


def decode_base64(body: bytes) -> bytes:
    """Lenient base64: line breaks and junk ignored, a truncated final quantum dropped (mail
    in the wild is often cut short; RFC 2045 §6.8 tells decoders to ignore what is not base64)."""
    compact = body.translate(None, _NOT_B64)  # "=" too: padding follows from the length
    usable = len(compact) - len(compact) % 4
    if len(compact) % 4 in (2, 3):
        tail = compact[usable:]
        compact = compact[:usable] + tail + b"=" * (4 - len(tail))
    else:
        compact = compact[:usable]
    return binascii.a2b_base64(compact)


_B64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_B64: Final = bytes(b for b in range(256) if b not in _B64_ALPHABET)


def binary_content(data: bytes, root: Part, path: tuple[int, ...]) -> bytes:
    """BINARY[path]: the decoded part (RFC 3516 §4.2); `[]` is the whole message as is."""
    if not path:
        return data
    part = find_part(root, path)
    if part is None:
        return b""
    body = data[part.body_start : part.end]
    if part.children or part.message is not None:
        return body  # composite types are never encoded (RFC 2045 §6.4)
    return decode_transfer(body, content_encoding(data, part.headers))
