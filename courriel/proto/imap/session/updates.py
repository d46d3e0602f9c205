"""Telling a session what changed in its selected folder: EXISTS, EXPUNGE or VANISHED, FETCH, FLAGS.

RFC 9051 §7.4.1 and §5.2: the server reports changes with untagged responses while a command is
in progress, and must not send EXPUNGE while answering FETCH, STORE or SEARCH (UID variants are
fine, RFC 9051 §7.5.1 note), nor when no command is in progress. So a change is looked up at the
end of each command (only when the store said this folder changed, or when the client polls with
NOOP, CHECK or IDLE), applied to the view, and announced; expunges wait in `view.gone` until a
command may report them. Once QRESYNC is enabled, VANISHED replaces EXPUNGE (RFC 7162 §3.2.10)
and unsolicited FETCH carries UID; once CONDSTORE is enabled it carries MODSEQ (RFC 7162 §3.1.4).
"""

from __future__ import annotations

from collections.abc import Iterable

from courriel.proto.imap import writer as w
from courriel.proto.imap.backend import Account, BackendError, ChangesView
from courriel.proto.imap.sequence import format_set
from courriel.proto.imap.session.context import Session
from courriel.proto.imap.session.selected import SelectedView


def flags_response(view: SelectedView) -> bytes:
    """`* FLAGS (…)`: the system flags and every keyword in use (RFC 9051 §7.3.5)."""
    names = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", *view.keywords_in_use())
    return w.untagged(b"FLAGS " + w.flag_list(tuple(names)))


async def sync(s: Session, *, expunge: bool, poll: bool = False) -> None:
    """Bring the client up to date; `poll` looks at the store even without a notification
    (another process may have written), `expunge` says EXPUNGE/VANISHED may be sent now."""
    view, account = s.selected, s.account
    if view is None or account is None:
        return
    if poll and not s.changed:
        current = await account.highest_modseq(view.folder_id)
        if current is None:
            await _folder_gone(s)
            return
        s.changed = current != view.modseq
    announce: list[int] = []
    if s.changed:
        s.changed = False  # a change committed while we read sets it again
        try:
            changes = await account.changes_since(view.folder_id, view.modseq)
        except BackendError:
            await _folder_gone(s)
            return
        announce = _apply(s, view, account, changes)
    _emit(s, view, expunge, announce)


def announce_removed(s: Session, uids: Iterable[int]) -> None:
    """This session's own EXPUNGE or MOVE removed these UIDs: say so now."""
    view = s.selected
    if view is None:
        return
    view.gone.update(uid for uid in uids if view.position(uid) is not None)
    _emit(s, view, True, [])


def _apply(s: Session, view: SelectedView, account: Account, changes: ChangesView) -> list[int]:
    """Fold the store's changes into the view; returns the UIDs whose FETCH the client needs."""
    announce: list[int] = []
    top = view.uids[-1] if len(view) else 0
    new = False
    for uid, flags, keywords, modseq in changes.changed:
        if uid > top:
            view.add(uid, flags, keywords, modseq)
            top, new = uid, True
            continue
        i = view.position(uid)
        if i is None or modseq <= view.modseqs[i]:
            continue  # unknown to this client, or a change it has seen (its own STORE)
        if view.update(i, flags, keywords, modseq) or s.condstore:
            announce.append(uid)
    for uid in changes.expunged:
        if view.position(uid) is not None:
            view.gone.add(uid)
    view.modseq = max(view.modseq, changes.highestmodseq)
    view.uidnext = max(view.uidnext, changes.uidnext)
    if new:
        first = account.claim_recent(view.folder_id, view.uidnext, not view.readonly)
        view.add_recent(first, view.uidnext)
    return announce


def _emit(s: Session, view: SelectedView, expunge: bool, announce: list[int]) -> None:
    if expunge and view.gone:
        positions = sorted(p for p in map(view.position, view.gone) if p is not None)
        if s.qresync:
            s.emit(w.vanished(format_set(view.uids_at(positions))))
        else:
            # Each EXPUNGE renumbers the messages after it (RFC 9051 §7.5.1).
            s.emit(b"".join(w.expunge(p - k + 1) for k, p in enumerate(positions)))
        view.remove(positions)
        view.gone.clear()
        view.exists_sent -= len(positions)
    if len(view) != view.exists_sent:
        s.emit(w.exists(len(view)))
        if not s.rev2:
            s.emit(w.untagged(b"%d RECENT" % view.recent_count()))
        view.exists_sent = len(view)
    if len(view.kw_table) != view.keywords_sent:
        s.emit(flags_response(view))  # a keyword new to this folder (RFC 9051 §7.3.5)
        view.keywords_sent = len(view.kw_table)
    for uid in announce:
        i = view.position(uid)
        if i is not None:
            s.emit(view.flags_fetch(i, uid=True, modseq=s.condstore, with_recent=not s.rev2))


async def _folder_gone(s: Session) -> None:
    """The selected folder vanished: deleted elsewhere (nothing sensible remains, as Dovecot
    does), or the whole mailbox was moved to another database, which the client must reconnect
    to — whichever of the change feed and the placement watch notices first."""
    try:
        moved = s.account is not None and await s.account.moved_away()
    except Exception:  # its database is gone too (dismounted): the client must go elsewhere
        moved = True
    s.deselect()
    if moved:
        s.bye_moved()
    else:
        s.bye("Selected mailbox was deleted, have to disconnect")
