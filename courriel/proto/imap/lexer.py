"""The token layer of the IMAP command grammar: a cursor over one framed command.

The reader (reader.py) frames a command as text lines and the literals between them; a line
that precedes a literal ends with its `{n}` marker. `Cursor` walks that structure and reads the
terminals of RFC 9051 §9: atom, astring, string (quoted or literal), nstring, number, number64,
date, date-time, flag, list-mailbox and sequence-set. Every miss raises `ParseError`; nothing
else escapes. Keywords are matched case-insensitively (RFC 9051 §9 note 1).

Regular expressions here match one token at a known offset (`pattern.match(line, pos)`), the
way a hand-written scanner would, so each byte is looked at once.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Final

from courriel.proto.imap.errors import ParseError
from courriel.proto.imap.sequence import SequenceSet, parse_sequence_set

# RFC 9051 §9: ATOM-CHAR is any CHAR except atom-specials: ( ) { SP CTL % * " \ ]
_ATOM: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
# ASTRING-CHAR adds resp-specials (]).
_ASTRING_ATOM: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
# list-char adds list-wildcards (% *) and resp-specials.
_LIST_CHARS: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')
# QUOTED-CHAR: TEXT-CHAR but the specials, or an escaped special; 8-bit is UTF-8 (RFC 9051 §9
# allows UTF8-2/3/4 in quoted, RFC 6855 §3 with UTF8=ACCEPT).
_QUOTED: Final = re.compile(rb'"((?:[^\x00\r\n"\\]|\\["\\])*)"')
_LITERAL: Final = re.compile(rb"(~?)\{(\d{1,19})(\+?)\}")
_NUMBER: Final = re.compile(rb"\d+")
_SEQSET: Final = re.compile(rb"[0-9:,*$]+")
_DATE: Final = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
_DATE_TIME: Final = re.compile(rb'"([ \d]?\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')
_UNESCAPE: Final = re.compile(rb"\\(.)")

MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTH_NUM: Final = {m.encode(): i + 1 for i, m in enumerate(MONTHS)}

#: RFC 9051 §2.3.2: system flags, matched case-insensitively and written canonically.
SYSTEM_FLAGS: Final = {
    f.upper(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent")
}

NUMBER32: Final = 4_294_967_295
NUMBER64: Final = 9_223_372_036_854_775_807  # RFC 9051 §9 number64: 63 bits


def canonical_flag(flag: str) -> str:
    """System flags in their canonical case; keywords and extension flags as sent."""
    if flag.startswith("\\"):
        return SYSTEM_FLAGS.get(flag.upper(), flag)
    return flag


def decode_utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(f"Invalid UTF-8 in {what}") from None


class Cursor:
    """Reads tokens left to right across the lines and literals of one command."""

    __slots__ = ("_lines", "_literals", "_k", "_line", "pos")

    def __init__(self, lines: tuple[bytes, ...], literals: tuple[bytes, ...]) -> None:
        self._lines = lines
        self._literals = literals
        self._k = 0
        self._line = lines[0]
        self.pos = 0

    # ---- position -----------------------------------------------------------------------

    def at_end(self) -> bool:
        return self.pos >= len(self._line) and self._k == len(self._lines) - 1

    def peek(self, offset: int = 0) -> int:
        """The byte `offset` ahead, or -1 past the end of the current line."""
        i = self.pos + offset
        return self._line[i] if i < len(self._line) else -1

    def match(self, pattern: re.Pattern[bytes]) -> bytes | None:
        """Consume and return what `pattern` matches here, if anything."""
        m = pattern.match(self._line, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        return m.group()

    def peek_is(self, prefix: bytes) -> bool:
        """Whether the upcoming text starts with `prefix`, case-insensitively."""
        end = self.pos + len(prefix)
        return self._line[self.pos : end].upper() == prefix

    def end(self) -> None:
        if not self.at_end():
            raise ParseError("Unexpected extra arguments")

    def expect(self, token: bytes, what: str | None = None) -> None:
        """Consume `token` (upper-case ASCII), matched case-insensitively."""
        if not self.peek_is(token):
            raise ParseError(f"Expected {what or token.decode()}")
        self.pos += len(token)

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise ParseError("Expected a space" if not self.at_end() else "Missing arguments")
        self.pos += 1

    def maybe(self, token: bytes) -> bool:
        if self.peek_is(token):
            self.pos += len(token)
            return True
        return False

    def maybe_sp(self) -> bool:
        if self.peek() == 0x20:
            self.pos += 1
            return True
        return False

    def open(self) -> None:
        self.expect(b"(", "'('")

    def close(self) -> bool:
        """Consume ')' if it is next."""
        if self.peek() == 0x29:
            self.pos += 1
            return True
        return False

    def close_bracket(self) -> bool:
        """Consume ']' if it is next."""
        if self.peek() == 0x5D:
            self.pos += 1
            return True
        return False

    # ---- atoms and numbers --------------------------------------------------------------

    def atom(self) -> bytes:
        m = _ATOM.match(self._line, self.pos)
        if m is None:
            raise ParseError("Expected an atom" if not self.at_end() else "Missing arguments")
        self.pos = m.end()
        return m.group()

    def keyword(self) -> str:
        """An atom as an upper-case str, for command names and options."""
        return self.atom().decode("ascii").upper()

    def number(self, limit: int = NUMBER32) -> int:
        m = _NUMBER.match(self._line, self.pos)
        if m is None:
            raise ParseError("Expected a number")
        digits = m.group()
        # Length first: int() of thousands of digits is slow and raises past 4300.
        if len(digits) > 19 or int(digits) > limit:
            raise ParseError("Number out of range")
        self.pos = m.end()
        return int(digits)

    def nz_number(self, limit: int = NUMBER32) -> int:
        n = self.number(limit)
        if n == 0:
            raise ParseError("Expected a non-zero number")
        return n

    def sequence_set(self, allow_saved: bool = True) -> SequenceSet:
        m = _SEQSET.match(self._line, self.pos)
        if m is None:
            raise ParseError("Expected a sequence set")
        seqset = parse_sequence_set(m.group(), allow_saved=allow_saved)
        self.pos = m.end()
        return seqset

    def at_sequence_set(self) -> bool:
        c = self.peek()
        return 0x30 <= c <= 0x39 or c in (0x2A, 0x24)  # digit, *, $

    # ---- strings --------------------------------------------------------------------------

    def _literal(self) -> tuple[bytes, bool] | None:
        m = _LITERAL.match(self._line, self.pos)
        if m is None:
            return None
        if m.end() != len(self._line) or self._k >= len(self._literals):
            raise ParseError("Literal must end the line")
        data = self._literals[self._k]
        if len(data) != int(m.group(2)):
            raise ParseError("Literal length mismatch")
        self._k += 1
        self._line = self._lines[self._k]
        self.pos = 0
        return data, m.group(1) == b"~"

    def literal(self, allow_binary: bool) -> tuple[bytes, bool]:
        """A literal (or literal8 when `allow_binary`): its bytes and whether it was literal8."""
        got = self._literal()
        if got is None:
            raise ParseError("Expected a literal")
        if got[1] and not allow_binary:
            raise ParseError("literal8 is not allowed here")
        return got

    def string(self) -> bytes:
        """quoted / literal (RFC 9051 §9 string); CHAR8 excludes NUL."""
        c = self.peek()
        if c == 0x22:
            m = _QUOTED.match(self._line, self.pos)
            if m is None:
                raise ParseError("Invalid quoted string")
            self.pos = m.end()
            value = m.group(1)
            return _UNESCAPE.sub(rb"\1", value) if b"\\" in value else value
        if self._at_literal():
            data, _binary = self.literal(allow_binary=False)
            if b"\x00" in data:
                raise ParseError("NUL in literal")
            return data
        raise ParseError("Expected a string" if not self.at_end() else "Missing arguments")

    def _at_literal(self) -> bool:
        """A literal starts here: "{" or, for literal8, "~{" ("~" alone is an ASTRING-CHAR)."""
        c = self.peek()
        return c == 0x7B or (c == 0x7E and self.peek(1) == 0x7B)

    def astring(self) -> bytes:
        if self.peek() == 0x22 or self._at_literal():
            return self.string()
        m = _ASTRING_ATOM.match(self._line, self.pos)
        if m is None:
            raise ParseError("Expected a string" if not self.at_end() else "Missing arguments")
        self.pos = m.end()
        return m.group()

    def nstring(self) -> bytes | None:
        if self.peek_is(b"NIL") and not _ASTRING_ATOM.match(self._line, self.pos + 3):
            self.pos += 3
            return None
        return self.string()

    def text_astring(self, what: str) -> str:
        return decode_utf8(self.astring(), what)

    def list_mailbox(self) -> bytes:
        """RFC 9051 §9 list-mailbox: 1*list-char / string."""
        if self.peek() == 0x22 or self._at_literal():
            return self.string()
        m = _LIST_CHARS.match(self._line, self.pos)
        if m is None:
            raise ParseError("Expected a mailbox pattern")
        self.pos = m.end()
        return m.group()

    def mailbox(self) -> str:
        """RFC 9051 §9 mailbox: astring, with INBOX matched case-insensitively (§5.1)."""
        name = self.text_astring("mailbox name")
        return "INBOX" if name.upper() == "INBOX" else name

    # ---- flags and dates -------------------------------------------------------------------

    def flag(self) -> str:
        backslash = self.peek() == 0x5C
        if backslash:
            self.pos += 1
        name = self.atom().decode("ascii")
        return canonical_flag("\\" + name) if backslash else name

    def flag_list(self) -> tuple[str, ...]:
        """RFC 9051 §9 flag-list: "(" [flag *(SP flag)] ")"."""
        self.open()
        flags: list[str] = []
        if not self.close():
            flags.append(self.flag())
            while not self.close():
                self.sp()
                flags.append(self.flag())
        return tuple(flags)

    def date(self) -> date:
        """RFC 9051 §9 date: date-text or the same in double quotes."""
        quoted = self.peek() == 0x22
        if quoted:
            self.pos += 1
        m = _DATE.match(self._line, self.pos)
        if m is None:
            raise ParseError("Invalid date")
        self.pos = m.end()
        if quoted:
            self.expect(b'"', "closing quote")
        return _make_date(m.group(1), m.group(2), m.group(3))

    def date_time(self) -> datetime:
        """RFC 9051 §9 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" in double quotes."""
        m = _DATE_TIME.match(self._line, self.pos)
        if m is None:
            raise ParseError("Invalid date-time")
        self.pos = m.end()
        day = _make_date(m.group(1).strip(), m.group(2), m.group(3))
        hh, mm, ss = int(m.group(4)), int(m.group(5)), int(m.group(6))
        zh, zm = int(m.group(8)), int(m.group(9))
        if hh > 23 or mm > 59 or ss > 60 or zh > 23 or zm > 59:
            raise ParseError("Invalid date-time")
        offset = timedelta(hours=zh, minutes=zm)
        if m.group(7) == b"-":
            offset = -offset
        # A leap second (60) is folded into :59; Python's datetime has no 60.
        return datetime(day.year, day.month, day.day, hh, mm, min(ss, 59), tzinfo=timezone(offset))


def _make_date(day: bytes, month: bytes, year: bytes) -> date:
    number = _MONTH_NUM.get(month.upper())
    if number is None:
        raise ParseError("Invalid month")
    try:
        return date(int(year), number, int(day))
    except ValueError:
        raise ParseError("Invalid date") from None
