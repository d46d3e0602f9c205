"""STORE and UID STORE: FLAGS, +FLAGS, -FLAGS, .SILENT, UNCHANGEDSINCE.

RFC 9051 §6.4.6 (the FETCH answer for each message of the set unless .SILENT), RFC 7162 §3.1.3
(UNCHANGEDSINCE: messages modified after that MODSEQ are left alone and listed in [MODIFIED];
with .SILENT the changed messages still get a FETCH with their new MODSEQ, RFC 7162 §3.1.3
example 3). \\Recent cannot be stored (RFC 3501 §2.3.2) and is ignored, as clients echo it;
another unknown system flag is a BAD. Keywords are created on demand (PERMANENTFLAGS \\*).
"""

from __future__ import annotations

from collections.abc import Iterable

from courriel.proto.imap import commands as c
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap.backend import SYSTEM_FLAGS, StoreMode
from courriel.proto.imap.session.context import Done, Session, bad, no
from courriel.proto.imap.session.selected import RECENT
from courriel.proto.imap.session.updates import flags_response

_BITS = {name.upper(): bit for bit, name in SYSTEM_FLAGS}
_MODES: dict[str, StoreMode] = {"+": "add", "-": "remove", "": "replace"}


def flag_bits(names: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """IMAP flag names → (system flag bits, keywords)."""
    bits = 0
    keywords: list[str] = []
    for name in names:
        if not name.startswith("\\"):
            keywords.append(name)
        elif name.upper() in _BITS:
            bits |= _BITS[name.upper()]
        elif name != RECENT:
            raise bad("Unknown system flag")
    return bits, tuple(keywords)


async def store(s: Session, cmd: c.Store) -> Done:
    view = s.require_selected()
    if view.readonly:
        raise no("Mailbox is read-only", rc.READ_ONLY)
    positions = s.positions(cmd.seqset, cmd.uid)
    bits, keywords = flag_bits(cmd.flags)
    if cmd.unchangedsince is not None:
        s.enable_condstore()  # RFC 7162 §3.1: UNCHANGEDSINCE enables CONDSTORE
    uids = view.uids_at(positions)
    known_keywords = len(view.kw_table)
    result = await s.require_account().store_flags(
        view.folder_id, uids, _MODES[cmd.mode], bits, keywords, cmd.unchangedsince
    )
    changed: set[int] = set()
    for uid, flags, kws, modseq in result.updated:
        i = view.position(uid)
        if i is not None:
            view.update(i, flags, kws, modseq)
            changed.add(i)
    if len(view.kw_table) != known_keywords:
        s.emit(flags_response(view))
        view.keywords_sent = len(view.kw_table)
    failed = set(result.failed_unchanged_since)
    for i in positions:
        if view.uids[i] in failed:
            continue
        if not cmd.silent:
            s.emit(view.flags_fetch(i, uid=cmd.uid, modseq=s.condstore, with_recent=not s.rev2))
        elif cmd.unchangedsince is not None and i in changed:
            s.emit(view.flags_fetch(i, uid=cmd.uid, modseq=True, flags=False, with_recent=False))
        await s.flush_if_large()
    if failed:
        numbers = sorted(failed) if cmd.uid else [i + 1 for i in positions if view.uids[i] in failed]
        return Done("Conditional STORE failed for some messages", rc.modified(numbers))
    return Done("STORE completed")
