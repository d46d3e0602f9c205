"""EXPUNGE and UID EXPUNGE (RFC 9051 §6.4.3, RFC 4315 §2.1).

The removed messages are announced at once with EXPUNGE (or VANISHED once QRESYNC is enabled,
RFC 7162 §3.2.10), together with any expunges other sessions made that were waiting. With
CONDSTORE enabled the tagged OK carries the new HIGHESTMODSEQ (RFC 7162 §3.2.7 does so for
QRESYNC clients, and it costs nothing here). A read-only (EXAMINE) mailbox cannot expunge.
"""

from __future__ import annotations

from courriel.proto.imap import commands as c
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap.session.context import Done, Session, no
from courriel.proto.imap.session.updates import announce_removed, sync


async def expunge(s: Session, cmd: c.Expunge) -> Done:
    view = s.require_selected()
    if view.readonly:
        raise no("Mailbox is read-only", rc.READ_ONLY)
    uids: list[int] | None = None
    if cmd.uids is not None:
        uids = view.uids_at(s.positions(cmd.uids, True))
        if not uids:
            return Done("EXPUNGE completed")
    removed = await s.require_account().expunge(view.folder_id, uids)
    announce_removed(s, removed)
    if not s.condstore:
        return Done("EXPUNGE completed")
    await sync(s, expunge=True, poll=True)
    if s.selected is None:
        return Done("EXPUNGE completed")
    return Done("EXPUNGE completed", rc.highestmodseq(s.selected.modseq))
