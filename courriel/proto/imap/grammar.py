"""Parse a framed command into a typed command (commands.py): RFC 3501 / RFC 9051 §6 and §9.

`parse_command(raw)` reads the tag and the command name and hands the cursor to the parser of
that command; the FETCH items and SEARCH criteria have their own modules (fetchatt.py,
searchkeys.py) and the mailbox-listing commands theirs (listing.py). Every failure is a
`ParseError` carrying the tag when it could be read, so the engine answers `tag BAD …` or
`* BAD …` (RFC 9051 §7.1.3). Which state allows which command is the engine's business.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from typing import Final

from courriel.proto.imap import commands as c
from courriel.proto.imap.errors import ParseError
from courriel.proto.imap.fetchatt import parse_fetch_items, parse_fetch_modifiers
from courriel.proto.imap.lexer import NUMBER64, Cursor, decode_utf8
from courriel.proto.imap.listing import parse_list, parse_lsub, parse_status
from courriel.proto.imap.reader import RawCommand, read_tag
from courriel.proto.imap.searchkeys import parse_search
from courriel.proto.imap.sequence import SequenceSet

_BASE64: Final = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_COMMAND_NAME: Final = re.compile(rb"[A-Za-z]+")
#: RFC 2971 §3.3: at most 30 pairs, fields of 30 octets, values of 1024.
ID_MAX_PAIRS: Final = 30
ID_MAX_FIELD: Final = 30
ID_MAX_VALUE: Final = 1024

Parser = Callable[[Cursor, str], c.Command]


def parse_command(raw: RawCommand) -> c.Command:
    """The typed command in `raw`, or `ParseError` (with `.tag` when one was read)."""
    tag = read_tag(raw.lines[0])
    if tag is None:
        raise ParseError("Missing or invalid tag")
    cur = Cursor(raw.lines, raw.literals)
    cur.pos = len(tag) + 1
    try:
        name = cur.match(_COMMAND_NAME)
        if name is None:
            raise ParseError("Missing command")
        word = name.decode("ascii").upper()
        if word == "UID":
            cur.sp()
            sub = cur.match(_COMMAND_NAME)
            parser = _UID_COMMANDS.get(sub.decode("ascii").upper()) if sub else None
            if parser is None:
                raise ParseError("Unknown UID command")
            return parser(cur, tag)
        parser = _COMMANDS.get(word)
        if parser is None:
            raise ParseError("Unknown command")
        return parser(cur, tag)
    except ParseError as exc:
        raise exc.with_tag(tag) from None


# ---- commands without arguments --------------------------------------------------------------


def _bare(cls: Callable[[str], c.Command]) -> Parser:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.end()
        return cls(tag)

    return parse


# ---- any state and not authenticated (RFC 9051 §6.1, §6.2) -----------------------------------


def _authenticate(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mechanism = cur.keyword()
    initial: bytes | None = None
    if cur.maybe_sp():
        # RFC 4959 §3: initial-response = base64 / "=" (an empty response).
        text = cur.match(_BASE64)
        if not text:
            raise ParseError("Invalid initial response")
        if text == b"=":
            initial = b""
        else:
            try:
                initial = binascii.a2b_base64(text, strict_mode=True)
            except binascii.Error:
                raise ParseError("Invalid base64 in initial response") from None
    cur.end()
    return c.Authenticate(tag, mechanism, initial)


def _login(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    user = cur.text_astring("user name")
    cur.sp()
    password = cur.text_astring("password")
    cur.end()
    return c.Login(tag, user, password)


def _compress(cur: Cursor, tag: str) -> c.Command:
    """RFC 4978 §3: "COMPRESS" SP algorithm."""
    cur.sp()
    algorithm = cur.keyword()
    cur.end()
    return c.Compress(tag, algorithm)


def _enable(cur: Cursor, tag: str) -> c.Command:
    """RFC 5161 §4: "ENABLE" 1*(SP capability)."""
    caps: list[str] = []
    while not cur.at_end() or not caps:
        cur.sp()
        caps.append(cur.keyword())
    return c.Enable(tag, tuple(caps))


def _id(cur: Cursor, tag: str) -> c.Command:
    """RFC 2971 §4: "ID" SP ( "(" string SP nstring *(SP string SP nstring) ")" / nil )."""
    cur.sp()
    if cur.maybe(b"NIL"):
        cur.end()
        return c.Id(tag, None)
    cur.open()
    pairs: list[tuple[str, str | None]] = []
    while True:
        key = cur.string()
        cur.sp()
        value = cur.nstring()
        if len(key) > ID_MAX_FIELD or (value is not None and len(value) > ID_MAX_VALUE):
            raise ParseError("ID field or value too long")
        pairs.append(
            (decode_utf8(key, "ID field"), None if value is None else decode_utf8(value, "ID value"))
        )
        if len(pairs) > ID_MAX_PAIRS:
            raise ParseError("Too many ID fields")
        if cur.close():
            break
        cur.sp()
    cur.end()
    return c.Id(tag, tuple(pairs))


# ---- authenticated state (RFC 9051 §6.3) -------------------------------------------------------


def _select(readonly: bool) -> Parser:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        mailbox = cur.mailbox()
        condstore = False
        qresync: c.QResyncParams | None = None
        if cur.maybe_sp():
            # RFC 4466 §2.1: select-params = SP "(" select-param *(SP select-param) ")"
            cur.open()
            while True:
                word = cur.keyword()
                if word == "CONDSTORE" and not condstore:
                    condstore = True
                elif word == "QRESYNC" and qresync is None:
                    cur.sp()
                    qresync = _qresync(cur)
                else:
                    raise ParseError("Unknown or repeated SELECT parameter")
                if cur.close():
                    break
                cur.sp()
        cur.end()
        return c.Select(tag, mailbox, readonly, condstore, qresync)

    return parse


def _known_set(cur: Cursor) -> SequenceSet:
    """RFC 7162 §7: known-uids and friends are sequence-sets without "*"."""
    seqset = cur.sequence_set(allow_saved=False)
    if seqset.has_star:
        raise ParseError("'*' is not allowed in QRESYNC")
    return seqset


def _qresync(cur: Cursor) -> c.QResyncParams:
    """RFC 7162 §3.2.5: "(" uidvalidity SP mod-sequence-value [SP known-uids]
    [SP seq-match-data] ")"."""
    cur.open()
    uidvalidity = cur.nz_number()
    cur.sp()
    modseq = cur.nz_number(NUMBER64)
    known: SequenceSet | None = None
    match: tuple[SequenceSet, SequenceSet] | None = None
    if cur.maybe_sp():
        if cur.peek() != 0x28:
            known = _known_set(cur)
            if cur.maybe_sp() and cur.peek() != 0x28:
                raise ParseError("Expected '('")
        if cur.peek() == 0x28:
            cur.open()
            seqs = _known_set(cur)
            cur.sp()
            uids = _known_set(cur)
            if not cur.close():
                raise ParseError("Expected ')'")
            match = (seqs, uids)
    if not cur.close():
        raise ParseError("Expected ')'")
    return c.QResyncParams(uidvalidity, modseq, known, match)


def _create(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mailbox = cur.mailbox()
    uses: tuple[str, ...] = ()
    if cur.maybe_sp():
        # RFC 4466 §2.2 create-params; RFC 6154 §6: "USE" SP "(" [use-attr *(SP use-attr)] ")"
        cur.open()
        cur.expect(b"USE", "USE")
        cur.sp()
        uses = tuple(canonical_use(flag) for flag in cur.flag_list())
        if any(not u.startswith("\\") for u in uses):
            raise ParseError("Special-use attributes start with a backslash")
        if not cur.close():
            raise ParseError("Unknown CREATE parameter")
    cur.end()
    return c.Create(tag, mailbox, uses)


_USES: Final = {
    u.upper(): u for u in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}


def canonical_use(attr: str) -> str:
    """RFC 6154 §2 special-use attributes in their canonical case."""
    return _USES.get(attr.upper(), attr)


def _one_mailbox(cls: Callable[[str, str], c.Command]) -> Parser:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        mailbox = cur.mailbox()
        cur.end()
        return cls(tag, mailbox)

    return parse


def _rename(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    old = cur.mailbox()
    cur.sp()
    new = cur.mailbox()
    cur.end()
    return c.Rename(tag, old, new)


def _append(cur: Cursor, tag: str) -> c.Command:
    """RFC 9051 §6.3.12: "APPEND" SP mailbox [SP flag-list] [SP date-time] SP literal, with
    literal8 from RFC 3516 §4.4 and UTF8 (literal8) from RFC 6855 §4."""
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    flags: tuple[str, ...] = ()
    if cur.peek() == 0x28:
        flags = cur.flag_list()
        cur.sp()
    when = None
    if cur.peek() == 0x22:
        when = cur.date_time()
        cur.sp()
    utf8 = cur.maybe(b"UTF8 (")
    message, binary = cur.literal(allow_binary=True)
    if utf8 and not cur.close():
        raise ParseError("Expected ')'")
    cur.end()
    return c.Append(tag, mailbox, flags, when, message, binary, utf8)


# ---- selected state (RFC 9051 §6.4) ---------------------------------------------------------------


def _uid_expunge(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    uids = cur.sequence_set()
    cur.end()
    return c.Expunge(tag, uids)


def _search(uid: bool) -> Parser:
    def parse(cur: Cursor, tag: str) -> c.Command:
        program = parse_search(cur)
        return c.Search(tag, uid, program.key, program.charset, program.returns)

    return parse


def _fetch(uid: bool) -> Parser:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        seqset = cur.sequence_set()
        cur.sp()
        items = parse_fetch_items(cur)
        mods = parse_fetch_modifiers(cur, uid) if cur.maybe_sp() else None
        cur.end()
        if mods is None:
            return c.Fetch(tag, uid, seqset, items)
        return c.Fetch(tag, uid, seqset, items, mods.changedsince, mods.vanished)

    return parse


def _store(uid: bool) -> Parser:
    """RFC 9051 §6.4.6 store; RFC 7162 §3.1.3 UNCHANGEDSINCE modifier."""

    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        seqset = cur.sequence_set()
        cur.sp()
        unchanged: int | None = None
        if cur.peek() == 0x28:
            cur.open()
            cur.expect(b"UNCHANGEDSINCE", "UNCHANGEDSINCE")
            cur.sp()
            unchanged = cur.number(NUMBER64)
            if not cur.close():
                raise ParseError("Unknown STORE modifier")
            cur.sp()
        mode = ""
        if cur.peek() in (0x2B, 0x2D):  # + -
            mode = chr(cur.peek())
            cur.pos += 1
        cur.expect(b"FLAGS", "FLAGS")
        silent = cur.maybe(b".SILENT")
        cur.sp()
        if cur.peek() == 0x28:
            flags = cur.flag_list()
        else:
            found = [cur.flag()]
            while cur.maybe_sp():
                found.append(cur.flag())
            flags = tuple(found)
        cur.end()
        return c.Store(tag, uid, seqset, mode, silent, flags, unchanged)

    return parse


def _transfer(cls: Callable[[str, bool, SequenceSet, str], c.Command], uid: bool) -> Parser:
    """COPY and MOVE (RFC 6851 §3.1): SP sequence-set SP mailbox."""

    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        seqset = cur.sequence_set()
        cur.sp()
        mailbox = cur.mailbox()
        cur.end()
        return cls(tag, uid, seqset, mailbox)

    return parse


_COMMANDS: Final[dict[str, Parser]] = {
    "CAPABILITY": _bare(c.Capability),
    "NOOP": _bare(c.Noop),
    "LOGOUT": _bare(c.Logout),
    "STARTTLS": _bare(c.StartTls),
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "ENABLE": _enable,
    "COMPRESS": _compress,
    "ID": _id,
    "SELECT": _select(readonly=False),
    "EXAMINE": _select(readonly=True),
    "CREATE": _create,
    "DELETE": _one_mailbox(c.Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _one_mailbox(c.Subscribe),
    "UNSUBSCRIBE": _one_mailbox(c.Unsubscribe),
    "LIST": parse_list,
    "LSUB": parse_lsub,
    "NAMESPACE": _bare(c.Namespace),
    "STATUS": parse_status,
    "APPEND": _append,
    "IDLE": _bare(c.Idle),
    "CHECK": _bare(c.Check),
    "CLOSE": _bare(c.Close),
    "UNSELECT": _bare(c.Unselect),
    "EXPUNGE": _bare(c.Expunge),
    "SEARCH": _search(uid=False),
    "FETCH": _fetch(uid=False),
    "STORE": _store(uid=False),
    "COPY": _transfer(c.Copy, uid=False),
    "MOVE": _transfer(c.Move, uid=False),
}

_UID_COMMANDS: Final[dict[str, Parser]] = {
    "SEARCH": _search(uid=True),
    "FETCH": _fetch(uid=True),
    "STORE": _store(uid=True),
    "COPY": _transfer(c.Copy, uid=True),
    "MOVE": _transfer(c.Move, uid=True),
    "EXPUNGE": _uid_expunge,
}
