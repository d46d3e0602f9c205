"""FETCH data items: what a client may ask of a message, typed.

RFC 9051 §6.4.5 and §9 (fetch-att, section, partial), RFC 3501 §6.4.5 (RFC822.*, BODY), RFC 3516
(BINARY, BINARY.PEEK, BINARY.SIZE), RFC 7162 §3.1.4 and §3.2.6 (MODSEQ; CHANGEDSINCE and VANISHED
modifiers). The macros ALL, FAST and FULL are expanded here so the engine sees plain items.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from courriel.proto.imap.errors import ParseError
from courriel.proto.imap.lexer import NUMBER64, Cursor

_NAME: Final = re.compile(rb"[A-Za-z0-9.]+")
_SAFE_FIELD: Final = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+")

#: Items that need no section (RFC 9051 §9 fetch-att; RFC822.* from RFC 3501).
SIMPLE_ITEMS: Final = frozenset(
    {
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",
    }
)

SECTION_TEXTS: Final = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})


@dataclass(frozen=True, slots=True)
class Section:
    """A section-spec: a part path (1.2.3) and an optional text specifier.

    `text` is one of HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME or None (the whole
    part); `fields` holds the upper-cased header names of HEADER.FIELDS[.NOT].
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        spec = ".".join(map(str, self.part))
        if self.text is not None:
            spec = f"{spec}.{self.text}" if spec else self.text
        if self.fields:
            names = " ".join(f if _SAFE_FIELD.fullmatch(f) else _quote(f) for f in self.fields)
            spec += f" ({names})"
        return spec


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class FetchAtt:
    """One fetch item. `name` is the item without .PEEK; `section` is None for the items of
    SIMPLE_ITEMS and set for BODY[...], BINARY[...] and BINARY.SIZE[...]."""

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None  # (origin, length) of <origin.length>
    peek: bool = False

    def response_name(self) -> str:
        """The item name in the FETCH response: BODY[1.TEXT]<0>, never .PEEK (RFC 9051 §7.5.2)."""
        if self.section is None:
            return self.name
        name = f"{self.name}[{self.section}]"
        if self.partial is not None:
            name += f"<{self.partial[0]}>"
        return name

    @property
    def sets_seen(self) -> bool:
        """RFC 9051 §6.4.5: BODY[...] and BINARY[...] set \\Seen; .PEEK does not. RFC 3501
        §6.4.5: so do RFC822 and RFC822.TEXT, while RFC822.HEADER is a peek."""
        if self.section is not None:
            return not self.peek and self.name != "BINARY.SIZE"
        return self.name in ("RFC822", "RFC822.TEXT")


def _att(name: str) -> FetchAtt:
    return FetchAtt(name)


MACROS: Final = {
    "FAST": (_att("FLAGS"), _att("INTERNALDATE"), _att("RFC822.SIZE")),
    "ALL": (_att("FLAGS"), _att("INTERNALDATE"), _att("RFC822.SIZE"), _att("ENVELOPE")),
    "FULL": (_att("FLAGS"), _att("INTERNALDATE"), _att("RFC822.SIZE"), _att("ENVELOPE"), _att("BODY")),
}


def parse_fetch_items(cur: Cursor) -> tuple[FetchAtt, ...]:
    """("ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")")."""
    if cur.peek() == 0x28:
        cur.open()
        items = [_fetch_att(cur)]
        while not cur.close():
            cur.sp()
            items.append(_fetch_att(cur))
        return tuple(items)
    start = cur.pos
    word = cur.match(_NAME)
    if word is not None and word.upper().decode() in MACROS:
        return MACROS[word.upper().decode()]
    cur.pos = start
    return (_fetch_att(cur),)


def _fetch_att(cur: Cursor) -> FetchAtt:
    word = cur.match(_NAME)
    if word is None:
        raise ParseError("Expected a fetch item")
    name = word.decode("ascii").upper()
    has_section = cur.peek() == 0x5B  # [
    if not has_section:
        if name in SIMPLE_ITEMS:
            return FetchAtt(name)
        raise ParseError(f"Unknown fetch item {name}" if len(name) < 40 else "Unknown fetch item")
    peek = name.endswith(".PEEK")
    base = name[:-5] if peek else name
    if base == "BODY":
        section = _section(cur)
    elif base in ("BINARY", "BINARY.SIZE") and not (peek and base == "BINARY.SIZE"):
        section = _binary_section(cur)
    else:
        raise ParseError("Unknown fetch item")
    partial = None
    if cur.peek() == 0x3C and base != "BINARY.SIZE":  # <
        cur.pos += 1
        origin = cur.number(NUMBER64)
        cur.expect(b".", "'.'")
        length = cur.nz_number(NUMBER64)
        cur.expect(b">", "'>'")
        partial = (origin, length)
    return FetchAtt(base, section, partial, peek)


def _is_digit(c: int) -> bool:
    return 0x30 <= c <= 0x39


def _part_path(cur: Cursor) -> list[int]:
    """section-part = nz-number *("." nz-number); a "." before a non-digit is left in place."""
    part: list[int] = []
    if not _is_digit(cur.peek()):
        return part
    part.append(cur.nz_number())
    while cur.peek() == 0x2E and _is_digit(cur.peek(1)):
        cur.pos += 1
        part.append(cur.nz_number())
    return part


def _section(cur: Cursor) -> Section:
    """RFC 9051 §9 section = "[" [section-spec] "]"."""
    cur.expect(b"[", "'['")
    if cur.close_bracket():
        return Section()
    part = _part_path(cur)
    if cur.close_bracket():
        return Section(tuple(part))
    if part:
        cur.expect(b".", "'.'")
    word = cur.match(_NAME)
    if word is None:
        raise ParseError("Invalid section")
    text = word.decode("ascii").upper()
    # RFC 9051 §9: MIME exists only after a part number (section-text vs section-msgtext).
    if text not in SECTION_TEXTS or (text == "MIME" and not part):
        raise ParseError("Invalid section")
    fields: tuple[str, ...] = ()
    if text.startswith("HEADER.FIELDS"):
        cur.sp()
        fields = _header_list(cur)
    if not cur.close_bracket():
        raise ParseError("Expected ']'")
    return Section(tuple(part), text, fields)


def _binary_section(cur: Cursor) -> Section:
    """RFC 3516 §4.1: section-binary = "[" [section-part] "]"."""
    cur.expect(b"[", "'['")
    part = _part_path(cur)
    if not cur.close_bracket():
        raise ParseError("Invalid binary section")
    return Section(tuple(part))


def _header_list(cur: Cursor) -> tuple[str, ...]:
    """header-list = "(" header-fld-name *(SP header-fld-name) ")"."""
    cur.open()
    names = [cur.text_astring("header name").upper()]
    while not cur.close():
        cur.sp()
        names.append(cur.text_astring("header name").upper())
    return tuple(names)


@dataclass(frozen=True, slots=True)
class FetchModifiers:
    changedsince: int | None = None
    vanished: bool = False


def parse_fetch_modifiers(cur: Cursor, uid: bool) -> FetchModifiers:
    """RFC 4466 §2.4 fetch-modifiers; CHANGEDSINCE and VANISHED from RFC 7162 §3.1.4.1, §3.2.6."""
    cur.open()
    changedsince: int | None = None
    vanished = False
    while True:
        word = cur.keyword()
        if word == "CHANGEDSINCE" and changedsince is None:
            cur.sp()
            changedsince = cur.number(NUMBER64)
        elif word == "VANISHED" and not vanished:
            vanished = True
        else:
            raise ParseError("Unknown or repeated FETCH modifier")
        if cur.close():
            break
        cur.sp()
    # RFC 7162 §3.2.6: VANISHED only in UID FETCH and only together with CHANGEDSINCE.
    if vanished and (not uid or changedsince is None):
        raise ParseError("VANISHED requires UID FETCH and CHANGEDSINCE")
    return FetchModifiers(changedsince, vanished)
