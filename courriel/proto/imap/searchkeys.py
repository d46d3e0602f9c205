"""SEARCH criteria as a small typed tree, and the SEARCH command's program and RETURN options.

RFC 9051 §6.4.4 and §9 (search-key, search-program), RFC 3501 §6.4.4 (NEW, OLD, RECENT, UNKEYWORD
… kept for IMAP4rev1 clients), RFC 4731 / RFC 9051 §6.4.4.1 (RETURN: MIN MAX ALL COUNT SAVE),
RFC 5182 (`$`), RFC 7162 §3.1.5 (MODSEQ). Shorthand keys are normalised so the engine has fewer
cases: UNSEEN is FlagKey(\\Seen, False), NEW is RECENT and UNSEEN, OLD is NOT RECENT.
Text values are decoded with the CHARSET the client named (default US-ASCII, read as UTF-8).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from datetime import date
from typing import Final, TypeAlias

from courriel.proto.imap.errors import ParseError
from courriel.proto.imap.lexer import NUMBER64, Cursor, canonical_flag
from courriel.proto.imap.sequence import SequenceSet


@dataclass(frozen=True, slots=True)
class AllKey:
    """ALL: every message."""


@dataclass(frozen=True, slots=True)
class FlagKey:
    """A flag or keyword that must be set (`present`) or clear."""

    flag: str
    present: bool


@dataclass(frozen=True, slots=True)
class SeqKey:
    """A sequence set, of message numbers or (UID key) of UIDs."""

    seqset: SequenceSet
    uid: bool


@dataclass(frozen=True, slots=True)
class DateKey:
    """BEFORE/ON/SINCE (internal date) and SENTBEFORE/SENTON/SENTSINCE (Date: header).

    RFC 9051 §6.4.4: dates compare by day only, disregarding time and timezone."""

    sent: bool
    op: str  # "BEFORE" | "ON" | "SINCE"
    day: date


@dataclass(frozen=True, slots=True)
class SizeKey:
    """LARGER n (`larger`) or SMALLER n, on RFC822.SIZE."""

    larger: bool
    size: int


@dataclass(frozen=True, slots=True)
class TextKey:
    """BCC CC FROM SUBJECT TO (that header), BODY (the body) or TEXT (headers and body)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class HeaderKey:
    """HEADER name value; an empty value matches every message with that header (§6.4.4)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class ModSeqKey:
    """MODSEQ [entry-name entry-type] n (RFC 7162 §3.1.5): messages with modseq >= n."""

    modseq: int
    entry: str | None = None
    entry_type: str | None = None


@dataclass(frozen=True, slots=True)
class NotKey:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class OrKey:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class AndKey:
    """A parenthesised group or the top-level list: every key must match."""

    keys: tuple[SearchKey, ...]


SearchKey: TypeAlias = (
    AllKey | FlagKey | SeqKey | DateKey | SizeKey | TextKey | HeaderKey | ModSeqKey | NotKey | OrKey | AndKey
)

_FLAG_KEYS: Final = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "RECENT": ("\\Recent", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
    "OLD": ("\\Recent", False),
}
_TEXT_KEYS: Final = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_DATE_KEYS: Final = {
    "BEFORE": (False, "BEFORE"),
    "ON": (False, "ON"),
    "SINCE": (False, "SINCE"),
    "SENTBEFORE": (True, "BEFORE"),
    "SENTON": (True, "ON"),
    "SENTSINCE": (True, "SINCE"),
}
_ARG_KEYS: Final = (
    _TEXT_KEYS
    | _DATE_KEYS.keys()
    | {"KEYWORD", "UNKEYWORD", "LARGER", "SMALLER", "HEADER", "UID", "NOT", "OR", "MODSEQ"}
)
RETURN_OPTIONS: Final = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})
#: Nesting bound: NOT/OR/() recurse, and a 64 KiB command could otherwise nest thousands deep.
MAX_DEPTH: Final = 64
#: What SEARCH answers with BADCHARSET (RFC 9051 §7.1).
SUPPORTED_CHARSETS_CODE: Final = "BADCHARSET (US-ASCII UTF-8)"


@dataclass(frozen=True, slots=True)
class SearchProgram:
    """Everything after SEARCH: RETURN options (None: plain SEARCH, RFC 3501 style), the
    charset as named by the client, and the criteria."""

    returns: frozenset[str] | None
    charset: str | None
    key: SearchKey


def parse_search(cur: Cursor) -> SearchProgram:
    """[search-return-opts] SP search-program, the cursor sitting after "SEARCH"."""
    cur.sp()
    returns: frozenset[str] | None = None
    if cur.peek_is(b"RETURN "):
        cur.pos += 7
        returns = _return_options(cur)
        cur.sp()
    charset: str | None = None
    codec = "utf-8"
    if cur.peek_is(b"CHARSET "):
        cur.pos += 8
        charset = cur.astring().decode("ascii", "replace").upper()
        codec = _codec_for(charset)
        cur.sp()
    keys = [_key(cur, codec, 0)]
    while not cur.at_end():
        cur.sp()
        keys.append(_key(cur, codec, 0))
    return SearchProgram(returns, charset, keys[0] if len(keys) == 1 else AndKey(tuple(keys)))


def _return_options(cur: Cursor) -> frozenset[str]:
    """RFC 4731 §3: "(" [search-return-opt *(SP search-return-opt)] ")"; () means ALL."""
    cur.open()
    opts: set[str] = set()
    if not cur.close():
        while True:
            word = cur.keyword()
            if word not in RETURN_OPTIONS:
                raise ParseError("Unknown SEARCH RETURN option")
            opts.add(word)
            if cur.close():
                break
            cur.sp()
    return frozenset(opts) if opts else frozenset({"ALL"})


def _codec_for(charset: str) -> str:
    # US-ASCII is read as UTF-8: clients that send 8-bit under the default mean UTF-8.
    if charset in ("US-ASCII", "UTF-8", "ASCII"):
        return "utf-8"
    try:
        return codecs.lookup(charset).name
    except LookupError:
        # RFC 9051 §6.4.4: an unsupported charset is a NO with BADCHARSET, not a BAD.
        raise ParseError("Unsupported charset", status="NO", code=SUPPORTED_CHARSETS_CODE) from None


def _text(cur: Cursor, codec: str) -> str:
    raw = cur.astring()
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        raise ParseError("Search text is not valid in the charset given") from None


def _key(cur: Cursor, codec: str, depth: int) -> SearchKey:
    if depth > MAX_DEPTH:
        raise ParseError("Search criteria nested too deeply")
    c = cur.peek()
    if c == 0x28:
        cur.pos += 1
        keys = [_key(cur, codec, depth + 1)]
        while not cur.close():
            cur.sp()
            keys.append(_key(cur, codec, depth + 1))
        return keys[0] if len(keys) == 1 else AndKey(tuple(keys))
    if cur.at_sequence_set():
        return SeqKey(cur.sequence_set(), uid=False)
    word = cur.keyword()
    if word in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[word]
        return FlagKey(flag, present)
    if word == "ALL":
        return AllKey()
    if word == "NEW":
        return AndKey((FlagKey("\\Recent", True), FlagKey("\\Seen", False)))
    if word not in _ARG_KEYS:
        raise ParseError("Unknown search key")
    cur.sp()
    if word in _TEXT_KEYS:
        return TextKey(word, _text(cur, codec))
    if word in _DATE_KEYS:
        sent, op = _DATE_KEYS[word]
        return DateKey(sent, op, cur.date())
    if word in ("KEYWORD", "UNKEYWORD"):
        return FlagKey(canonical_flag(cur.flag()), word == "KEYWORD")
    if word in ("LARGER", "SMALLER"):
        return SizeKey(word == "LARGER", cur.number(NUMBER64))
    if word == "HEADER":
        name = cur.text_astring("header name")
        cur.sp()
        return HeaderKey(name, _text(cur, codec))
    if word == "UID":
        return SeqKey(cur.sequence_set(), uid=True)
    if word == "NOT":
        return NotKey(_key(cur, codec, depth + 1))
    if word == "OR":
        left = _key(cur, codec, depth + 1)
        cur.sp()
        return OrKey(left, _key(cur, codec, depth + 1))
    return _modseq(cur)  # the last of _ARG_KEYS


def _modseq(cur: Cursor) -> ModSeqKey:
    """RFC 7162 §3.1.5: "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer."""
    if cur.peek() == 0x22:
        entry = cur.string().decode("ascii", "replace")
        cur.sp()
        entry_type = cur.keyword()
        if entry_type not in ("PRIV", "SHARED", "ALL"):
            raise ParseError("Invalid MODSEQ entry type")
        cur.sp()
        return ModSeqKey(cur.number(NUMBER64), entry, entry_type.lower())
    return ModSeqKey(cur.number(NUMBER64))
