"""Mailbox names between the wire and the store.

IMAP4rev1 clients send and receive names in modified UTF-7 (RFC 3501 §5.1.3); once a client
enables IMAP4rev2 (RFC 9051 §5.1) or UTF8=ACCEPT (RFC 6855 §3) names travel as UTF-8. The store
keeps Unicode. A rev1 client that sends raw 8-bit UTF-8, or a lone "&" ("Tom & Jerry"), gets its
name taken as written rather than an error, as lenient servers do: the name is listed back in
canonical modified UTF-7 and works from then on. The hierarchy separator is "/" (DESIGN.md §3).
"""

from __future__ import annotations

from typing import Final

from courriel.proto.imap import mutf7
from courriel.proto.imap import writer as w
from courriel.proto.imap.session.context import Session

SEPARATOR: Final = "/"


def from_wire(s: Session, name: str) -> str:
    if s.utf8 or not name.isascii() or "&" not in name:
        return name
    try:
        return mutf7.decode(name)
    except mutf7.Mutf7Error:
        return name


def to_wire(s: Session, name: str) -> bytes:
    """The name as an astring for LIST, LSUB, STATUS."""
    if s.utf8:
        return w.astring(name, utf8=True)
    return w.astring(mutf7.encode(name))
