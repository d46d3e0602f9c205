"""Message flags: the system-flag bitmask stored in SQL, keywords, and IMAP flag names.

System flags (RFC 9051 §2.3.2) are one small integer per message so that the IMAP engine can
test and count them without string work, and SQL can filter them with `flags & mask`. `\\Recent`
is not stored: it is per session (RFC 3501 §2.3.2) and belongs to the IMAP engine. Keywords are
case-insensitive atoms; a message keeps the first spelling it was given, and its keywords are
stored as one space-separated text column (see schema.py for why not a side table).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

SEEN = 1
ANSWERED = 2
FLAGGED = 4
DELETED = 8
DRAFT = 16
ALL_SYSTEM = SEEN | ANSWERED | FLAGGED | DELETED | DRAFT

StoreMode = Literal["add", "remove", "replace"]
Keywords = tuple[str, ...]

_NAMES: tuple[tuple[int, str], ...] = (
    (SEEN, "\\Seen"),
    (ANSWERED, "\\Answered"),
    (FLAGGED, "\\Flagged"),
    (DELETED, "\\Deleted"),
    (DRAFT, "\\Draft"),
)
_BY_NAME = {name.casefold(): bit for bit, name in _NAMES}
# RFC 9051 §9 (atom-specials, list-wildcards, resp-specials): characters a flag-keyword atom cannot hold.
_NOT_IN_ATOM = frozenset('(){ %*"\\]')
MAX_KEYWORD_LENGTH = 100
MAX_KEYWORDS_PER_MESSAGE = 64


class FlagError(ValueError):
    """A flag name that cannot be stored: an unknown system flag, \\Recent, or a malformed keyword."""


def flag_names(flags: int, keywords: Iterable[str] = ()) -> list[str]:
    """The IMAP names of a message's system flags followed by its keywords."""
    names = [name for bit, name in _NAMES if flags & bit]
    names.extend(keywords)
    return names


def parse_flags(names: Iterable[str]) -> tuple[int, Keywords]:
    """IMAP flag names → (system bitmask, keywords); raises FlagError for names we cannot store."""
    bits = 0
    keywords: list[str] = []
    for name in names:
        if name.startswith("\\"):
            bit = _BY_NAME.get(name.casefold())
            if bit is None:
                # RFC 9051 §2.3.2: \Recent (rev1) is server-managed, other flag-extensions are unknown.
                raise FlagError(f"cannot store flag {name}")
            bits |= bit
        else:
            keywords.append(name)
    return bits, normalize_keywords(keywords)


def normalize_keywords(keywords: Iterable[str]) -> Keywords:
    """Validate, de-duplicate case-insensitively (keeping the first spelling) and sort."""
    seen: dict[str, str] = {}
    for keyword in keywords:
        if not keyword or len(keyword) > MAX_KEYWORD_LENGTH:
            raise FlagError("keyword length out of bounds")
        if any(ch in _NOT_IN_ATOM or ord(ch) < 0x21 or ord(ch) > 0x7E for ch in keyword):
            raise FlagError(f"keyword {keyword!r} is not an atom")
        seen.setdefault(keyword.casefold(), keyword)
    if len(seen) > MAX_KEYWORDS_PER_MESSAGE:
        raise FlagError("too many keywords on one message")
    return tuple(seen[key] for key in sorted(seen))


def join_keywords(keywords: Keywords) -> str:
    return " ".join(keywords)


def split_keywords(text: str) -> Keywords:
    return tuple(text.split()) if text else ()


def apply_store(
    mode: StoreMode, old_flags: int, old_keywords: Keywords, flags: int, keywords: Keywords
) -> tuple[int, Keywords]:
    """The flags a message has after STORE FLAGS / +FLAGS / -FLAGS (RFC 9051 §6.4.6)."""
    if mode == "replace":
        return flags & ALL_SYSTEM, keywords
    if mode == "add":
        if not keywords:
            return old_flags | flags, old_keywords
        return old_flags | flags, normalize_keywords(old_keywords + keywords)
    if mode == "remove":
        if not keywords:
            return old_flags & ~flags, old_keywords
        drop = {k.casefold() for k in keywords}
        return old_flags & ~flags, tuple(k for k in old_keywords if k.casefold() not in drop)
    raise ValueError(f"unknown store mode {mode!r}")
