"""Commands that change or describe folders without selecting them: CREATE, DELETE, RENAME,
SUBSCRIBE, UNSUBSCRIBE, STATUS.

RFC 9051 §6.3.4–6.3.11 (with RFC 3501 §6.3.3 for the "/" hierarchy: CREATE makes missing
parents, a trailing "/" only declares intent), RFC 6154 §3 (CREATE … (USE (\\Sent))), RFC 7162
§3.1.2 (STATUS HIGHESTMODSEQ, a CONDSTORE-enabling item), RFC 8438 (SIZE), RFC 7889 §3.2
(APPENDLIMIT). The store answers STATUS from counters kept in the folder row: no message is read.
Refusals carry RFC 5530 codes from the store (ALREADYEXISTS, NONEXISTENT, CANNOT, USEATTR …).
"""

from __future__ import annotations

from collections.abc import Iterable

from courriel.proto.imap import commands as c
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap import writer as w
from courriel.proto.imap.backend import FolderView
from courriel.proto.imap.session.context import Done, Session, no
from courriel.proto.imap.session.names import from_wire


async def create(s: Session, cmd: c.Create) -> Done:
    account = s.require_account()
    name = from_wire(s, cmd.mailbox)
    if name.rstrip("/").upper() == "INBOX":
        raise no("Mailbox already exists", rc.ALREADYEXISTS)
    if len(cmd.special_use) > 1:
        raise no("One special-use attribute per mailbox", "USEATTR")  # RFC 6154 §3
    await account.create_folder(name, cmd.special_use[0] if cmd.special_use else None)
    return Done("CREATE completed")


async def delete(s: Session, cmd: c.Delete) -> Done:
    account = s.require_account()
    name = from_wire(s, cmd.mailbox)
    folder = await account.get_folder(name)
    await account.delete_folder(name)
    view = s.selected
    if view is not None and folder is not None and folder.id == view.folder_id:
        # The selected mailbox is gone: back to the authenticated state, and say so (RFC 9051
        # §7.1 CLOSED) rather than leave sequence numbers that name nothing.
        s.deselect()
        s.emit(w.untagged_status("OK", "Selected mailbox was deleted", rc.CLOSED))
    return Done("DELETE completed")


async def rename(s: Session, cmd: c.Rename) -> Done:
    account = s.require_account()
    await account.rename_folder(from_wire(s, cmd.mailbox), from_wire(s, cmd.new_name))
    return Done("RENAME completed")


async def subscribe(s: Session, cmd: c.Subscribe | c.Unsubscribe) -> Done:
    account = s.require_account()
    on = isinstance(cmd, c.Subscribe)
    await account.subscribe(from_wire(s, cmd.mailbox), on)
    return Done(f"{'SUBSCRIBE' if on else 'UNSUBSCRIBE'} completed")


def status_items(s: Session, folder: FolderView, items: Iterable[str]) -> list[tuple[str, int]]:
    """STATUS values from the folder row (RFC 9051 §6.3.11)."""
    out: list[tuple[str, int]] = []
    for item in items:
        if item == "MESSAGES":
            out.append((item, folder.messages))
        elif item == "RECENT":
            out.append((item, _recent(s, folder)))
        elif item == "UIDNEXT":
            out.append((item, folder.uidnext))
        elif item == "UIDVALIDITY":
            out.append((item, folder.uidvalidity))
        elif item == "UNSEEN":
            out.append((item, folder.unseen))
        elif item == "SIZE":
            out.append((item, folder.size))
        elif item == "DELETED":
            out.append((item, folder.deleted))
        elif item == "APPENDLIMIT":
            out.append((item, s.config.append_limit))
        elif item == "HIGHESTMODSEQ":
            s.enable_condstore()
            out.append((item, folder.highestmodseq))
    return out


def _recent(s: Session, folder: FolderView) -> int:
    view = s.selected
    if view is not None and view.folder_id == folder.id:
        return view.recent_count()
    if s.account is None:
        return 0
    # Messages nobody has been told about yet: at most every UID at or above the marker.
    first = s.account.claim_recent(folder.id, folder.uidnext, False)
    return min(folder.messages, max(0, folder.uidnext - first))


async def status(s: Session, cmd: c.Status) -> Done:
    account = s.require_account()
    folder = await account.get_folder(from_wire(s, cmd.mailbox))
    if folder is None or folder.noselect:
        raise no("Mailbox does not exist", rc.NONEXISTENT)
    name = w.astring(cmd.mailbox, utf8=s.utf8)
    s.emit(w.status_line(name, status_items(s, folder, cmd.items)))
    return Done("STATUS completed")
