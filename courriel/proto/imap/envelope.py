"""The ENVELOPE fetch item: header fields parsed into IMAP's fixed structure.

RFC 9051 §7.5.2 (ENVELOPE: date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to,
message-id; sender and reply-to default to from), §9 (envelope, address). Address lists follow
RFC 5322 §3.4 (name-addr, addr-spec, group, obsolete routes in §4.4); a group is written as a
start marker (NIL NIL "name" NIL) and an end marker (NIL NIL NIL NIL). RFC 2047 encoded words
are kept as sent: the client decodes them (RFC 9051 §7.5.2 returns the raw header strings).
Bytes go out through writer.py, which picks a literal for 8-bit text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from courriel.proto.imap.mime import Header, header_value
from courriel.proto.imap.writer import NIL, nstring

_ATOM_RUN: Final = re.compile(rb'[^\s()<>@,;:\\".\[\]]+')
_UNESCAPE: Final = re.compile(rb"\\(.)", re.DOTALL)

#: RFC 9051 §9 reserves a NIL host for group markers, so a mailbox that lacks a part gets
#: Dovecot's placeholders rather than a NIL that clients would read as a group.
MISSING_MAILBOX: Final = b"MISSING_MAILBOX"
MISSING_DOMAIN: Final = b"MISSING_DOMAIN"


@dataclass(frozen=True, slots=True)
class Address:
    """One address, or a group marker: start (mailbox = group name, host None) or end (all None)."""

    name: bytes | None
    route: bytes | None
    mailbox: bytes | None
    host: bytes | None


def _tokens(value: bytes) -> list[tuple[str, bytes]]:
    """RFC 5322 lexical tokens: ("q", quoted), ("c", comment), ("d", [literal]),
    ("a", atom), ("s", special), ("w", whitespace)."""
    out: list[tuple[str, bytes]] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch in b" \t\r\n":
            j = i
            while j < n and value[j] in b" \t\r\n":
                j += 1
            out.append(("w", b" "))
            i = j
        elif ch == 0x22:  # quoted-string
            j = i + 1
            while j < n and value[j] != 0x22:
                j += 2 if value[j] == 0x5C else 1
            raw = value[i + 1 : min(j, n)]
            out.append(("q", _UNESCAPE.sub(rb"\1", raw) if b"\\" in raw else raw))
            i = j + 1
        elif ch == 0x28:  # comment, nested
            depth, j = 1, i + 1
            while j < n and depth:
                c = value[j]
                if c == 0x5C:
                    j += 1
                elif c == 0x28:
                    depth += 1
                elif c == 0x29:
                    depth -= 1
                j += 1
            out.append(("c", value[i + 1 : j - 1 if depth == 0 else j].strip()))
            i = j
        elif ch == 0x5B:  # domain literal
            j = value.find(b"]", i)
            j = n - 1 if j == -1 else j
            out.append(("d", value[i : j + 1]))
            i = j + 1
        elif ch in b"<>@,;:.":
            out.append(("s", bytes((ch,))))
            i += 1
        else:
            m = _ATOM_RUN.match(value, i)
            end = m.end() if m else i + 1
            out.append(("a", value[i:end]))
            i = end
    return out


def _phrase(tokens: list[tuple[str, bytes]]) -> bytes | None:
    """Display name: words joined by single spaces; comments are not part of it."""
    words: list[bytes] = []
    pending_space = False
    for kind, text in tokens:
        if kind == "w":
            pending_space = bool(words)
        elif kind in ("a", "q", "s", "d"):
            if pending_space:
                words.append(b" ")
            words.append(text)
            pending_space = False
    name = b"".join(words).strip()
    return name or None


def _spec(tokens: list[tuple[str, bytes]]) -> bytes:
    """local-part or domain: tokens concatenated without blanks or comments."""
    return b"".join(text for kind, text in tokens if kind in ("a", "q", "s", "d"))


def parse_address_list(value: bytes) -> list[Address]:
    """The addresses of an address-list header value, with group markers."""
    tokens = _tokens(value)
    result: list[Address] = []
    item: list[tuple[str, bytes]] = []
    in_group = False
    for kind, text in tokens + [("s", b",")]:
        if kind == "s" and text == b":" and not in_group and not any(t == b"<" for _, t in item):
            result.append(Address(None, None, _phrase(item) or b"", None))
            in_group, item = True, []
        elif kind == "s" and text in (b",", b";") and not _inside_angle(item):
            address = _one(item)
            if address is not None:
                result.append(address)
            item = []
            if text == b";" and in_group:
                result.append(Address(None, None, None, None))
                in_group = False
        else:
            item.append((kind, text))
    if in_group:
        result.append(Address(None, None, None, None))  # an unclosed group still ends
    return result


def _inside_angle(item: list[tuple[str, bytes]]) -> bool:
    depth = 0
    for kind, text in item:
        if kind == "s" and text == b"<":
            depth += 1
        elif kind == "s" and text == b">":
            depth = max(0, depth - 1)
    return depth > 0


def _one(item: list[tuple[str, bytes]]) -> Address | None:
    """One mailbox: name-addr (phrase <route:local@domain>) or addr-spec (local@domain (name))."""
    if not any(kind != "w" for kind, _ in item):
        return None
    starts = [i for i, (kind, text) in enumerate(item) if kind == "s" and text == b"<"]
    if starts:
        lt = starts[0]
        gt = next((i for i in range(lt, len(item)) if item[i] == ("s", b">")), len(item))
        name = _phrase(item[:lt])
        inner = item[lt + 1 : gt]
        route = None
        colon = next((i for i, t in enumerate(inner) if t == ("s", b":")), None)
        if colon is not None:  # RFC 5322 §4.4 obs-route: <@a,@b:user@host>
            route = _spec(inner[:colon]) or None
            inner = inner[colon + 1 :]
        mailbox, host = _split_at(inner)
        return Address(name, route, mailbox or MISSING_MAILBOX, host or MISSING_DOMAIN)
    mailbox, host = _split_at(item)
    comments = [text for kind, text in item if kind == "c" and text]
    name = comments[-1] if comments else None
    return Address(name, None, mailbox or MISSING_MAILBOX, host or MISSING_DOMAIN)


def _split_at(tokens: list[tuple[str, bytes]]) -> tuple[bytes | None, bytes | None]:
    ats = [i for i, t in enumerate(tokens) if t == ("s", b"@")]
    if not ats:
        local = _spec(tokens)
        return (local or None), None
    at = ats[-1]
    return (_spec(tokens[:at]) or None), (_spec(tokens[at + 1 :]) or None)


def _address(a: Address) -> bytes:
    return b"(%s %s %s %s)" % (nstring(a.name), nstring(a.route), nstring(a.mailbox), nstring(a.host))


def address_list(value: bytes | None) -> bytes:
    """RFC 9051 §9: "(" 1*address ")" / nil; an empty list is NIL."""
    if value is None:
        return NIL
    addresses = parse_address_list(value)
    if not addresses:
        return NIL
    return b"(" + b"".join(_address(a) for a in addresses) + b")"


def envelope(data: bytes, headers: list[Header]) -> bytes:
    """The ENVELOPE of a message (or of an encapsulated message/rfc822), serialised."""

    def field(name: str) -> bytes | None:
        value = header_value(data, headers, name)
        return value if value else None

    sender_from = address_list(field("from"))
    sender = field("sender")
    reply_to = field("reply-to")
    return b"(%s %s %s %s %s %s %s %s %s %s)" % (
        nstring(field("date")),
        nstring(field("subject")),
        sender_from,
        # RFC 9051 §7.5.2: absent Sender and Reply-To default to From.
        address_list(sender) if sender else sender_from,
        address_list(reply_to) if reply_to else sender_from,
        address_list(field("to")),
        address_list(field("cc")),
        address_list(field("bcc")),
        nstring(field("in-reply-to")),
        nstring(field("message-id")),
    )
