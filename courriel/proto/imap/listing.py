"""LIST, LSUB and STATUS: the commands that describe mailboxes without selecting them.

RFC 9051 §6.3.9 (LIST with the RFC 5258 LIST-EXTENDED grammar: selection options, several
patterns, RETURN options), RFC 6154 §3 (SPECIAL-USE selection and return options), RFC 5819
(RETURN (STATUS (…))), RFC 3501 §6.3.9 (LSUB), RFC 9051 §6.3.11 and RFC 7162 §3.1.2, RFC 8438
(SIZE), RFC 7889 §3.2 (APPENDLIMIT) for the STATUS items.
"""

from __future__ import annotations

from typing import Final

from courriel.proto.imap import commands as c
from courriel.proto.imap.errors import ParseError
from courriel.proto.imap.lexer import Cursor, decode_utf8

SELECT_OPTIONS: Final = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
RETURN_OPTIONS: Final = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"})
STATUS_ITEMS: Final = frozenset(
    {
        "MESSAGES",
        "RECENT",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "SIZE",
        "HIGHESTMODSEQ",
        "DELETED",
        "APPENDLIMIT",
    }
)


def _options(cur: Cursor, allowed: frozenset[str], what: str) -> list[str]:
    """A parenthesised option list; RFC 5258 §3: an unknown option is a BAD."""
    cur.open()
    words: list[str] = []
    if cur.close():
        return words
    while True:
        word = cur.keyword()
        if word not in allowed:
            raise ParseError(f"Unknown LIST {what} option")
        words.append(word)
        if cur.close():
            return words
        cur.sp()


def _status_items(cur: Cursor) -> tuple[str, ...]:
    """ "(" status-att *(SP status-att) ")"."""
    cur.open()
    items = [cur.keyword()]
    while not cur.close():
        cur.sp()
        items.append(cur.keyword())
    unknown = [i for i in items if i not in STATUS_ITEMS]
    if unknown:
        raise ParseError("Unknown STATUS item")
    return tuple(items)


def parse_list(cur: Cursor, tag: str) -> c.Command:
    """ "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]."""
    cur.sp()
    extended = False
    selection: set[str] = set()
    if cur.peek() == 0x28:
        extended = True
        selection.update(_options(cur, SELECT_OPTIONS, "selection"))
        cur.sp()
        # RFC 5258 §3.1: RECURSIVEMATCH needs a base option; alone (or with REMOTE) it is BAD.
        if "RECURSIVEMATCH" in selection and not selection & {"SUBSCRIBED", "SPECIAL-USE"}:
            raise ParseError("RECURSIVEMATCH needs another selection option")
    reference = decode_utf8(cur.astring(), "reference")
    cur.sp()
    patterns: list[str] = []
    if cur.peek() == 0x28:
        extended = True
        cur.open()
        patterns.append(decode_utf8(cur.list_mailbox(), "pattern"))
        while not cur.close():
            cur.sp()
            patterns.append(decode_utf8(cur.list_mailbox(), "pattern"))
    else:
        patterns.append(decode_utf8(cur.list_mailbox(), "pattern"))
    returns: set[str] = set()
    status: tuple[str, ...] | None = None
    if cur.maybe_sp():
        extended = True
        cur.expect(b"RETURN", "RETURN")
        cur.sp()
        returns, status = _return_options(cur)
    cur.end()
    return c.List(tag, reference, tuple(patterns), frozenset(selection), frozenset(returns), status, extended)


def _return_options(cur: Cursor) -> tuple[set[str], tuple[str, ...] | None]:
    """RFC 5258 §6 list-return-opts; RFC 5819 §2 status-option = "STATUS" SP "(" … ")"."""
    cur.open()
    returns: set[str] = set()
    status: tuple[str, ...] | None = None
    if cur.close():
        return returns, status
    while True:
        word = cur.keyword()
        if word == "STATUS" and status is None:
            cur.sp()
            status = _status_items(cur)
        elif word in RETURN_OPTIONS:
            returns.add(word)
        else:
            raise ParseError("Unknown or repeated LIST return option")
        if cur.close():
            return returns, status
        cur.sp()


def parse_lsub(cur: Cursor, tag: str) -> c.Command:
    """RFC 3501 §6.3.9: "LSUB" SP mailbox SP list-mailbox."""
    cur.sp()
    reference = decode_utf8(cur.astring(), "reference")
    cur.sp()
    pattern = decode_utf8(cur.list_mailbox(), "pattern")
    cur.end()
    return c.Lsub(tag, reference, pattern)


def parse_status(cur: Cursor, tag: str) -> c.Command:
    """RFC 9051 §6.3.11: "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"."""
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    items = _status_items(cur)
    cur.end()
    return c.Status(tag, mailbox, items)
