"""Response codes: the bracketed part of `tag OK [CODE …] text` (RFC 9051 §7.1).

Each builder returns the code text without brackets, for writer.tagged/untagged_status. Plain
codes are constants so the engine and the tests share one spelling. Sources: RFC 9051 §7.1
(ALERT, ALREADYEXISTS, CANNOT, CLOSED, LIMIT, NONEXISTENT, TRYCREATE, UIDNEXT, UIDVALIDITY,
PERMANENTFLAGS, READ-ONLY, READ-WRITE, UNKNOWN-CTE, BADCHARSET …), RFC 4315 §3 (APPENDUID,
COPYUID), RFC 4978 §3 (COMPRESSIONACTIVE), RFC 7162 §3.1.2.1, §3.1.3, §3.2.11 (HIGHESTMODSEQ, NOMODSEQ, MODIFIED), RFC 4469 §3
and RFC 7888/7889 (TOOBIG).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from courriel.proto.imap.sequence import format_ordered_set, format_set

ALERT: Final = "ALERT"
ALREADYEXISTS: Final = "ALREADYEXISTS"
AUTHENTICATIONFAILED: Final = "AUTHENTICATIONFAILED"
AUTHORIZATIONFAILED: Final = "AUTHORIZATIONFAILED"
CANNOT: Final = "CANNOT"
CLIENTBUG: Final = "CLIENTBUG"
CLOSED: Final = "CLOSED"
COMPRESSIONACTIVE: Final = "COMPRESSIONACTIVE"  # RFC 4978 §3
CONTACTADMIN: Final = "CONTACTADMIN"
EXPUNGEISSUED: Final = "EXPUNGEISSUED"
INUSE: Final = "INUSE"
LIMIT: Final = "LIMIT"
NOMODSEQ: Final = "NOMODSEQ"
NONEXISTENT: Final = "NONEXISTENT"
NOPERM: Final = "NOPERM"
OVERQUOTA: Final = "OVERQUOTA"
PRIVACYREQUIRED: Final = "PRIVACYREQUIRED"
READ_ONLY: Final = "READ-ONLY"
READ_WRITE: Final = "READ-WRITE"
SERVERBUG: Final = "SERVERBUG"
TOOBIG: Final = "TOOBIG"
TRYCREATE: Final = "TRYCREATE"
UNAVAILABLE: Final = "UNAVAILABLE"
UNKNOWN_CTE: Final = "UNKNOWN-CTE"
UIDNOTSTICKY: Final = "UIDNOTSTICKY"


def uidnext(n: int) -> str:
    return f"UIDNEXT {n}"


def uidvalidity(n: int) -> str:
    return f"UIDVALIDITY {n}"


def unseen(seq: int) -> str:
    """RFC 3501 §7.1: first unseen message number (IMAP4rev1 SELECT only)."""
    return f"UNSEEN {seq}"


def highestmodseq(n: int) -> str:
    return f"HIGHESTMODSEQ {n}"


def permanentflags(flags: Iterable[str], new_keywords: bool = True) -> str:
    """RFC 9051 §7.1: `\\*` says the client may create keywords."""
    names = list(flags)
    if new_keywords:
        names.append("\\*")
    return "PERMANENTFLAGS (" + " ".join(names) + ")"


def capability(caps: Iterable[str]) -> str:
    return "CAPABILITY " + " ".join(caps)


def appenduid(uidvalidity: int, uids: Sequence[int]) -> str:
    """RFC 4315 §3: APPENDUID uidvalidity uid-set (a set once MULTIAPPEND appends several)."""
    return f"APPENDUID {uidvalidity} {format_ordered_set(uids)}"


def copyuid(uidvalidity: int, source: Sequence[int], destination: Sequence[int]) -> str:
    """RFC 4315 §3: COPYUID uidvalidity source-set dest-set, paired position by position."""
    if len(source) != len(destination):
        raise ValueError("COPYUID sets must have the same length")
    return f"COPYUID {uidvalidity} {format_ordered_set(source)} {format_ordered_set(destination)}"


def modified(numbers: Iterable[int]) -> str:
    """RFC 7162 §3.1.3: messages that failed UNCHANGEDSINCE."""
    return "MODIFIED " + format_set(numbers)


def badcharset(charsets: Iterable[str]) -> str:
    return "BADCHARSET (" + " ".join(charsets) + ")"
