"""LIST and LSUB: which folders exist, with their attributes, and LIST-STATUS.

RFC 9051 §6.3.9 (reference and pattern, "*" and "%" wildcards, `LIST "" ""` for the delimiter),
RFC 5258 (LIST-EXTENDED: selection options SUBSCRIBED, SPECIAL-USE, RECURSIVEMATCH with CHILDINFO,
return options, several patterns, \\NonExistent, \\Subscribed), RFC 3348 (\\HasChildren and
\\HasNoChildren, always returned), RFC 6154 (special-use attributes, always returned), RFC 5819
(RETURN (STATUS (…)): a STATUS line after each selectable folder, from the folder rows of the
one list query), RFC 3501 §6.3.9 (LSUB, with \\Noselect parents for "%"). INBOX matches
case-insensitively (RFC 9051 §5.1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable

from courriel.proto.imap import commands as c
from courriel.proto.imap import writer as w
from courriel.proto.imap.backend import FolderView
from courriel.proto.imap.session.context import Done, Session
from courriel.proto.imap.session.mailboxes import status_items
from courriel.proto.imap.session.names import SEPARATOR, from_wire, to_wire

Matcher = Callable[[str], bool]


def matcher(s: Session, reference: str, pattern: str) -> Matcher:
    """A predicate for names matching reference + pattern (RFC 9051 §6.3.9)."""
    if reference.endswith(SEPARATOR) and pattern.startswith(SEPARATOR):
        pattern = pattern[1:]
    full = from_wire(s, reference + pattern)
    if full[:5].upper() == "INBOX" and full[5:6] in ("", SEPARATOR):
        full = "INBOX" + full[5:]
    regex = "".join(".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch) for ch in full)
    compiled = re.compile(regex + r"\Z", re.DOTALL)
    return lambda name: compiled.match(name) is not None


def _ancestors(name: str) -> list[str]:
    parts = name.split(SEPARATOR)
    return [SEPARATOR.join(parts[:depth]) for depth in range(1, len(parts))]


def _order(names: Iterable[str]) -> list[str]:
    """INBOX and its children first, then by name."""
    return sorted(names, key=lambda n: (n != "INBOX" and not n.startswith("INBOX/"), n))


def _attributes(folder: FolderView | None, subscribed: bool) -> list[str]:
    attrs: list[str] = []
    if folder is None:
        attrs.append("\\NonExistent")  # RFC 5258 §3.4: only a subscription names it
    else:
        if folder.noselect:
            attrs.append("\\Noselect")
        attrs.append("\\HasChildren" if folder.has_children else "\\HasNoChildren")
        if folder.special_use:
            attrs.append(folder.special_use)
    if subscribed:
        attrs.append("\\Subscribed")
    return attrs


async def list_(s: Session, cmd: c.List) -> Done:
    account = s.require_account()
    if cmd.patterns == ("",):
        # RFC 9051 §6.3.9: an empty pattern asks for the delimiter and the root name.
        s.emit(w.list_line("LIST", ["\\Noselect"], SEPARATOR, b'""'))
        return Done("LIST completed")
    folders = {f.name: f for f in await account.list_folders()}
    select, returns = cmd.selection, cmd.returns
    show_subscribed = "SUBSCRIBED" in select or "SUBSCRIBED" in returns
    subscribed: Collection[str] = ()
    if show_subscribed:
        subscribed = set(await account.list_subscriptions())
    base = set(subscribed) if "SUBSCRIBED" in select else set(folders)
    if "SPECIAL-USE" in select:
        base = {n for n in base if (f := folders.get(n)) is not None and f.special_use}
    matches = [matcher(s, cmd.reference, p) for p in cmd.patterns]
    # RFC 5258 §3.5: with RECURSIVEMATCH, a name with a descendant that meets the selection
    # carries CHILDINFO naming the criteria, and is listed even if it does not meet them.
    childinfo: dict[str, None] = {}
    if "RECURSIVEMATCH" in select:
        childinfo = {a: None for n in base for a in _ancestors(n)}
    criteria = [o for o in ("SUBSCRIBED", "SPECIAL-USE") if o in select]
    extra = b' ("CHILDINFO" (' + " ".join(f'"{o}"' for o in criteria).encode() + b"))"
    for name in _order(base | childinfo.keys()):
        if not any(m(name) for m in matches):
            continue
        folder = folders.get(name)
        attrs = _attributes(folder, show_subscribed and name in subscribed)
        wire = to_wire(s, name)
        s.emit(w.list_line("LIST", attrs, SEPARATOR, wire, extra if name in childinfo else b""))
        if cmd.status and folder is not None and not folder.noselect:
            s.emit(w.status_line(wire, status_items(s, folder, cmd.status)))
        await s.flush_if_large()
    return Done("LIST completed")


async def lsub(s: Session, cmd: c.Lsub) -> Done:
    account = s.require_account()
    subscriptions = set(await account.list_subscriptions())
    folders = {f.name: f for f in await account.list_folders()}
    match = matcher(s, cmd.reference, cmd.pattern)
    found: dict[str, bool] = {}  # name -> subscribed itself
    for name in subscriptions:
        if match(name):
            found[name] = True
        if "%" in cmd.pattern:
            # RFC 3501 §6.3.9: a "%" that stops at a parent of a subscribed name lists the
            # parent as \Noselect.
            for parent in _ancestors(name):
                if parent not in subscriptions and match(parent):
                    found.setdefault(parent, False)
    for name in _order(found):
        folder = folders.get(name)
        selectable = found[name] and folder is not None and not folder.noselect
        s.emit(w.list_line("LSUB", [] if selectable else ["\\Noselect"], SEPARATOR, to_wire(s, name)))
    return Done("LSUB completed")
