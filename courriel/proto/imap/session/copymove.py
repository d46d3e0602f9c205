"""COPY, MOVE and their UID forms, with COPYUID (RFC 9051 §6.4.7–6.4.8, RFC 6851, RFC 4315 §3).

A missing target gets NO [TRYCREATE] (RFC 9051 §6.4.7) so the client can CREATE and retry.
MOVE answers COPYUID in an untagged OK before the expunges of the moved messages (RFC 6851
§4.3), then EXPUNGE or VANISHED for them, whatever the command form (RFC 6851 §3.3). The store
shares the message bytes: only rows are written.
"""

from __future__ import annotations

from courriel.proto.imap import commands as c
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap import writer as w
from courriel.proto.imap.session.context import Done, Session, no
from courriel.proto.imap.session.names import from_wire
from courriel.proto.imap.session.updates import announce_removed


async def copy(s: Session, cmd: c.Copy | c.Move) -> Done:
    view = s.require_selected()
    account = s.require_account()
    move = isinstance(cmd, c.Move)
    if move and view.readonly:
        raise no("Mailbox is read-only", rc.READ_ONLY)
    uids = view.uids_at(s.positions(cmd.seqset, cmd.uid))
    target = await account.get_folder(from_wire(s, cmd.mailbox))
    if target is None or target.noselect:
        raise no("Mailbox does not exist", rc.TRYCREATE)
    verb = "MOVE" if move else "COPY"
    if not uids:
        return Done(f"{verb} completed")
    if move:
        result = await account.move(view.folder_id, uids, target.id)
    else:
        result = await account.copy(view.folder_id, uids, target.id)
    code = None
    if result.mapping:
        sources, targets = zip(*result.mapping, strict=True)
        code = rc.copyuid(result.uidvalidity, list(sources), list(targets))
    if not move:
        return Done(f"{verb} completed", code)
    if code is not None:
        s.emit(w.untagged_status("OK", "Moved", code))
    announce_removed(s, (source for source, _ in result.mapping))
    return Done(f"{verb} completed")
