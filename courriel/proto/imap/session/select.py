"""SELECT and EXAMINE (with CONDSTORE and QRESYNC), CLOSE and UNSELECT.

RFC 9051 §6.3.2–6.3.3 and §6.4.2, RFC 3501 §6.3.1 for IMAP4rev1 clients (RECENT and UNSEEN),
RFC 3691 (UNSELECT), RFC 7162 §3.1.2 (HIGHESTMODSEQ on every SELECT, SELECT (CONDSTORE)) and
§3.2.5 (SELECT (QRESYNC (uidvalidity modseq [known-uids]))): VANISHED (EARLIER) for what the
client may still hold, FETCH for what changed). SELECT reads one snapshot of the folder (one
query returning four aggregated columns) and nothing else, so a 10,000-message folder opens in
milliseconds; the watch is set before the snapshot so no change can slip between the two.
"""

from __future__ import annotations

from courriel.proto.imap import commands as c
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap import writer as w
from courriel.proto.imap.sequence import format_set
from courriel.proto.imap.session.context import Done, Session, bad, no
from courriel.proto.imap.session.names import SEPARATOR, from_wire, to_wire
from courriel.proto.imap.session.selected import SelectedView, in_set
from courriel.proto.imap.session.updates import flags_response

PERMANENT = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


async def select(s: Session, cmd: c.Select) -> Done:
    account = s.require_account()
    if cmd.qresync is not None and not s.qresync:
        raise bad("QRESYNC is not enabled")  # RFC 7162 §3.2.5; a BAD leaves the selection alone
    if s.selected is not None:
        s.deselect()
        if s.qresync or s.rev2:
            # RFC 7162 §3.2.11, RFC 9051 §7.1: the old mailbox is closed before the new one opens.
            s.emit(w.untagged_status("OK", "Previous mailbox closed", rc.CLOSED))
    if cmd.condstore or cmd.qresync is not None:
        s.enabled.add("CONDSTORE")
    name = from_wire(s, cmd.mailbox)
    folder = await account.get_folder(name)
    if folder is None or folder.noselect:
        raise no("Mailbox does not exist", rc.NONEXISTENT)
    s.changed = False
    watch = account.watch(folder.id, s.notify_change)
    try:
        snapshot = await account.snapshot(folder.id)
    except BaseException:
        watch.close()
        raise
    view = SelectedView(folder.id, folder.name, cmd.readonly, snapshot)
    view.add_recent(account.claim_recent(folder.id, snapshot.uidnext, not cmd.readonly), snapshot.uidnext)
    s.select(view, watch)
    _describe(s, view)
    if cmd.qresync is not None and cmd.qresync.uidvalidity == view.uidvalidity:
        await _resync(s, view, cmd.qresync)
    if cmd.readonly:
        return Done("EXAMINE completed", rc.READ_ONLY)
    return Done("SELECT completed", rc.READ_WRITE)


def _describe(s: Session, view: SelectedView) -> None:
    """The untagged part of the SELECT answer (RFC 9051 §6.3.2, RFC 3501 §6.3.1)."""
    s.emit(flags_response(view))
    permanent = () if view.readonly else (*PERMANENT, *view.keywords_in_use())
    s.emit(w.untagged_status("OK", "Flags permitted", rc.permanentflags(permanent, not view.readonly)))
    s.emit(w.exists(len(view)))
    if not s.rev2:
        s.emit(w.untagged(b"%d RECENT" % view.recent_count()))
        first = view.first_unseen()
        if first is not None:
            s.emit(w.untagged_status("OK", "First unseen", rc.unseen(first)))
    s.emit(w.untagged_status("OK", "UIDs valid", rc.uidvalidity(view.uidvalidity)))
    s.emit(w.untagged_status("OK", "Predicted next UID", rc.uidnext(view.uidnext)))
    # RFC 7162 §3.1.2.1: a server with persistent MODSEQs sends HIGHESTMODSEQ on every SELECT.
    s.emit(w.untagged_status("OK", "Highest", rc.highestmodseq(view.modseq)))
    if s.rev2:
        # RFC 9051 §6.3.2: the mailbox's LIST response, with its name as the server spells it.
        s.emit(w.list_line("LIST", [], SEPARATOR, to_wire(s, view.name)))


async def _resync(s: Session, view: SelectedView, params: c.QResyncParams) -> None:
    """RFC 7162 §3.2.5.2: what the client must forget, then what changed, since its MODSEQ."""
    account = s.require_account()
    changes = await account.changes_since(view.folder_id, params.modseq)
    known = params.known_uids
    # Expunges that happened after the snapshot are left to the next update, so the view and
    # the client never disagree about which messages exist.
    vanished = [
        uid
        for uid in changes.expunged
        if view.position(uid) is None and (known is None or in_set(uid, known, uid))
    ]
    if vanished:
        s.emit(w.vanished(format_set(vanished), earlier=True))
    for i in range(len(view)):
        if view.modseqs[i] > params.modseq:
            s.emit(view.flags_fetch(i, uid=True, modseq=True, with_recent=not s.rev2))
            await s.flush_if_large()


async def close(s: Session, cmd: c.Close) -> Done:
    """RFC 9051 §6.4.1: expunge silently (unless read-only), then leave the selected state."""
    view = s.require_selected()
    account = s.require_account()
    if not view.readonly:
        await account.expunge(view.folder_id, None)
    s.deselect()
    return Done("CLOSE completed")


async def unselect(s: Session, cmd: c.Unselect) -> Done:
    """RFC 3691: leave the selected state without expunging."""
    s.require_selected()
    s.deselect()
    return Done("UNSELECT completed")
