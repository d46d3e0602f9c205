"""Typed IMAP commands: what grammar.parse_command returns and the session engine dispatches on.

One frozen dataclass per command of RFC 3501 / RFC 9051 and of the extensions Courriel serves:
IDLE (RFC 2177), UIDPLUS (RFC 4315), MOVE (RFC 6851), SPECIAL-USE (RFC 6154), NAMESPACE
(RFC 2342), ID (RFC 2971), ENABLE (RFC 5161), SASL-IR (RFC 4959), CONDSTORE/QRESYNC (RFC 7162),
ESEARCH (RFC 4731), UNSELECT (RFC 3691), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819),
BINARY (RFC 3516), STATUS=SIZE (RFC 8438), APPENDLIMIT (RFC 7889), COMPRESS=DEFLATE (RFC 4978).

Mailbox names are the wire form (modified UTF-7, or UTF-8 once UTF8=ACCEPT is enabled): the
engine decodes them with mutf7.py because only it knows what the client enabled.
`uid` on a command means it came as `UID <command>` (RFC 9051 §6.4.9).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from courriel.proto.imap.fetchatt import FetchAtt
from courriel.proto.imap.searchkeys import SearchKey
from courriel.proto.imap.sequence import SequenceSet


@dataclass(frozen=True, slots=True)
class Capability:
    tag: str


@dataclass(frozen=True, slots=True)
class Noop:
    tag: str


@dataclass(frozen=True, slots=True)
class Logout:
    tag: str


@dataclass(frozen=True, slots=True)
class StartTls:
    tag: str


@dataclass(frozen=True, slots=True)
class Authenticate:
    """`initial_response` is the decoded SASL-IR response (RFC 4959 §3; "=" is b"")."""

    tag: str
    mechanism: str
    initial_response: bytes | None = None


@dataclass(frozen=True, slots=True)
class Login:
    tag: str
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Compress:
    """RFC 4978 §3: COMPRESS SP algorithm (upper-cased; only DEFLATE is served)."""

    tag: str
    algorithm: str


@dataclass(frozen=True, slots=True)
class Enable:
    tag: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QResyncParams:
    """RFC 7162 §3.2.5: QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)])."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select:
    """SELECT, or EXAMINE when `readonly`."""

    tag: str
    mailbox: str
    readonly: bool = False
    condstore: bool = False
    qresync: QResyncParams | None = None


@dataclass(frozen=True, slots=True)
class Create:
    """`special_use` from CREATE … (USE (\\Drafts …)) (RFC 6154 §3)."""

    tag: str
    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename:
    tag: str
    mailbox: str
    new_name: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class List:
    """LIST with its RFC 5258 options.

    `selection` holds SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE; `returns` holds
    SUBSCRIBED, CHILDREN, SPECIAL-USE, and `status` the STATUS items of RETURN (STATUS (…))
    (RFC 5819). `extended` says the client used any LIST-EXTENDED syntax, which changes how
    the engine answers (RFC 5258 §3: e.g. CHILDREN info and \\NonExistent).
    """

    tag: str
    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status: tuple[str, ...] | None = None
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Lsub:
    tag: str
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Namespace:
    tag: str


@dataclass(frozen=True, slots=True)
class Status:
    tag: str
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Append:
    """`binary` when the message came as literal8 (RFC 3516 §4.4), `utf8` when wrapped in
    UTF8 (…) (RFC 6855 §4)."""

    tag: str
    mailbox: str
    flags: tuple[str, ...]
    internal_date: datetime | None
    message: bytes
    binary: bool = False
    utf8: bool = False


@dataclass(frozen=True, slots=True)
class Check:
    tag: str


@dataclass(frozen=True, slots=True)
class Close:
    tag: str


@dataclass(frozen=True, slots=True)
class Unselect:
    tag: str


@dataclass(frozen=True, slots=True)
class Expunge:
    """EXPUNGE, or UID EXPUNGE uid-set (RFC 4315 §2.1) when `uids` is set."""

    tag: str
    uids: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Search:
    """`returns` is None for a plain SEARCH (answered with `* SEARCH`); a set of MIN MAX ALL
    COUNT SAVE asks for ESEARCH (RFC 4731, RFC 9051 §6.4.4)."""

    tag: str
    uid: bool
    key: SearchKey
    charset: str | None = None
    returns: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Fetch:
    """Items with the ALL/FAST/FULL macros expanded. RFC 7162 §3.1.4.1: CHANGEDSINCE implies
    the MODSEQ item, which the engine adds to its answer; RFC 9051 §6.4.9: UID FETCH always
    answers UID."""

    tag: str
    uid: bool
    seqset: SequenceSet
    items: tuple[FetchAtt, ...]
    changedsince: int | None = None
    vanished: bool = False


@dataclass(frozen=True, slots=True)
class Store:
    """`mode` is "+" (add), "-" (remove) or "" (replace) (RFC 9051 §6.4.6)."""

    tag: str
    uid: bool
    seqset: SequenceSet
    mode: str
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    tag: str
    uid: bool
    seqset: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class Move:
    tag: str
    uid: bool
    seqset: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class Idle:
    tag: str


@dataclass(frozen=True, slots=True)
class Id:
    """RFC 2971: field/value pairs, or None for `ID NIL`."""

    tag: str
    params: tuple[tuple[str, str | None], ...] | None


Command: TypeAlias = (
    Capability
    | Noop
    | Logout
    | StartTls
    | Authenticate
    | Login
    | Enable
    | Compress
    | Select
    | Create
    | Delete
    | Rename
    | Subscribe
    | Unsubscribe
    | List
    | Lsub
    | Namespace
    | Status
    | Append
    | Check
    | Close
    | Unselect
    | Expunge
    | Search
    | Fetch
    | Store
    | Copy
    | Move
    | Idle
    | Id
)
