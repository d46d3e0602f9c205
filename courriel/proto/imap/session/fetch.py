"""FETCH and UID FETCH: message data for a set of messages, in batches.

RFC 9051 §6.4.5 and §7.5.2 (items, BODY[section]<partial>, .PEEK, \\Seen set as a side effect
and FLAGS returned when it changes; UID FETCH always answers UID, §6.4.9), RFC 3501 §6.4.5
(RFC822, RFC822.HEADER, RFC822.TEXT), RFC 3516 (BINARY, BINARY.SIZE, UNKNOWN-CTE), RFC 7162
§3.1.4 (MODSEQ, CHANGEDSINCE) and §3.2.6 (VANISHED (EARLIER) in UID FETCH). RFC 2180 §4.1.2:
a non-UID FETCH of a message expunged by another session ends in NO [EXPUNGEISSUED]; the data
of the others is still sent.

Cost model: UID, FLAGS and MODSEQ come from the session's view with no query at all, one
%-format per message, so `UID FETCH 1:* (FLAGS)` over 10,000 messages is one tight loop.
Everything else is read per batch of `analysis.BATCH` messages with one metadata query;
ENVELOPE and BODYSTRUCTURE come from the store's cache, header sections (a message list's
HEADER.FIELDS) from the header block the store keeps, and bytes are read only for other body
items (or a message never analysed), a few megabytes per worker-thread hop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Final

from courriel.proto.imap import commands as c
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap import writer as w
from courriel.proto.imap.backend import SEEN, Analysis, MetaView
from courriel.proto.imap.bodystructure import body_structure
from courriel.proto.imap.errors import SectionError
from courriel.proto.imap.fetchatt import FetchAtt, Section
from courriel.proto.imap.mime import Part, scan
from courriel.proto.imap.sections import (
    binary_content,
    is_root_header,
    partial,
    root_header_content,
    section_content,
)
from courriel.proto.imap.sequence import SequenceSet, format_set
from courriel.proto.imap.session.analysis import BATCH, BYTES_PER_READ, byte_groups, complete, from_cache
from courriel.proto.imap.session.context import FLUSH_AT, Done, Session, no
from courriel.proto.imap.session.selected import SelectedView, in_set

VIEW_ITEMS: Final = frozenset({"UID", "FLAGS", "MODSEQ"})
STRUCTURE_ITEMS: Final = frozenset({"ENVELOPE", "BODYSTRUCTURE"})
_RFC822_SECTIONS: Final = {"RFC822.HEADER": Section((), "HEADER"), "RFC822.TEXT": Section((), "TEXT")}
_VIEW_FORMATS: Final = {"UID": b"UID %d", "FLAGS": b"FLAGS %s", "MODSEQ": b"MODSEQ (%d)"}
FLAGS_ITEM: Final = FetchAtt("FLAGS")
FIRST_BODY_BATCH: Final = 50  # about FLUSH_AT of bodies of a usual size


def _needs_bytes(att: FetchAtt) -> bool:
    return att.section is not None or att.name in ("BODY", "RFC822", "RFC822.HEADER", "RFC822.TEXT")


async def fetch(s: Session, cmd: c.Fetch) -> Done:
    view = s.require_selected()
    positions = s.positions(cmd.seqset, cmd.uid)
    names = {a.name for a in cmd.items}
    with_modseq = "MODSEQ" in names or cmd.changedsince is not None
    if with_modseq:
        s.enable_condstore()  # RFC 7162 §3.1: MODSEQ and CHANGEDSINCE enable CONDSTORE
    if cmd.changedsince is not None:
        since = cmd.changedsince
        positions = [i for i in positions if view.modseqs[i] > since]
        if cmd.vanished:
            await _vanished(s, view, cmd.seqset, since)
    atts = [a for a in cmd.items if a.name not in ("UID", "MODSEQ")]
    if cmd.uid or "UID" in names:
        atts.insert(0, FetchAtt("UID"))  # RFC 9051 §6.4.9: UID FETCH always answers UID
    if with_modseq:
        atts.append(FetchAtt("MODSEQ"))
    seen_now = await _mark_seen(s, view, positions, cmd.items)
    if all(a.name in VIEW_ITEMS for a in atts):
        await _fetch_view(s, view, positions, [a.name for a in atts])
        return Done("FETCH completed")
    missing = await _fetch_batches(s, view, positions, atts, seen_now)
    if missing and not cmd.uid:
        raise no("Some of the requested messages no longer exist", rc.EXPUNGEISSUED)
    return Done("FETCH completed")


def _view_column(s: Session, view: SelectedView, name: str) -> Callable[[int], object]:
    if name == "UID":
        return view.uids.__getitem__
    if name == "FLAGS":
        return view.flags_getter(not s.rev2)
    return view.modseqs.__getitem__


async def _fetch_view(s: Session, view: SelectedView, positions: list[int], names: list[str]) -> None:
    """Items the view holds: one %-format per message, flushed every `FLUSH_AT` bytes."""
    fmt = b"* %d FETCH (" + b" ".join(_VIEW_FORMATS[n] for n in names) + b")\r\n"
    columns = [_view_column(s, view, n) for n in names]
    for start in range(0, len(positions), BATCH):
        batch = positions[start : start + BATCH]
        if len(columns) == 1:
            (a,) = columns
            s.emit(b"".join([fmt % (i + 1, a(i)) for i in batch]))
        elif len(columns) == 2:
            a, b = columns
            s.emit(b"".join([fmt % (i + 1, a(i), b(i)) for i in batch]))
        else:
            s.emit(b"".join([fmt % (i + 1, *(col(i) for col in columns)) for i in batch]))
        if len(s.out) >= FLUSH_AT:
            await s.flush()


async def _mark_seen(
    s: Session, view: SelectedView, positions: list[int], items: Sequence[FetchAtt]
) -> set[int]:
    """Set \\Seen for non-PEEK body fetches (RFC 9051 §6.4.5); positions whose flags changed."""
    if view.readonly or not any(a.sets_seen for a in items):
        return set()
    targets = [view.uids[i] for i in positions if not view.flags[i] & SEEN]
    if not targets:
        return set()
    result = await s.require_account().store_flags(view.folder_id, targets, "add", SEEN, (), None)
    changed: set[int] = set()
    for uid, flags, keywords, modseq in result.updated:
        i = view.position(uid)
        if i is not None:
            view.update(i, flags, keywords, modseq)
            changed.add(i)
    return changed


async def _vanished(s: Session, view: SelectedView, seqset: SequenceSet, since: int) -> None:
    """RFC 7162 §3.2.6: UIDs in the set expunged after `since`, as VANISHED (EARLIER)."""
    changes = await s.require_account().changes_since(view.folder_id, since)
    top = view.uidnext - 1
    gone = [u for u in changes.expunged if view.position(u) is None and in_set(u, seqset, top, s.saved)]
    if gone:
        s.emit(w.vanished(format_set(gone), earlier=True))


class _Message:
    """What one FETCH line is built from: the row, and the bytes when an item needs them."""

    __slots__ = ("meta", "data", "analysis", "_root")

    def __init__(self, meta: MetaView, data: bytes | None, analysis: Analysis | None) -> None:
        self.meta = meta
        self.data = data
        self.analysis = analysis
        self._root: Part | None = None

    @property
    def raw(self) -> bytes:
        assert self.data is not None  # _fetch_batches reads bytes when any item needs them
        return self.data

    @property
    def root(self) -> Part:
        if self._root is None:
            self._root = scan(self.raw)
        return self._root

    def section(self, section: Section) -> bytes:
        """BODY[section] before any partial range; header sections without a MIME scan."""
        if not section.part and section.text is None:
            return self.raw
        if self._root is None and is_root_header(section):
            return root_header_content(self.raw, section)
        return section_content(self.raw, self.root, section)

    def cached(self, name: str) -> bytes:
        """ENVELOPE or BODYSTRUCTURE, from the store's cache or just computed."""
        meta, fresh = self.meta, self.analysis
        value = meta.envelope if name == "ENVELOPE" else meta.bodystructure
        if value is None and fresh is not None:
            value = fresh.envelope if name == "ENVELOPE" else fresh.bodystructure
        return from_cache(value or "")


class _Plan:
    """What a FETCH needs of each message, decided once for all its batches."""

    __slots__ = ("atts", "with_flags", "seen_now", "needs_bytes", "headers_only", "structure")

    def __init__(self, atts: list[FetchAtt], seen_now: set[int]) -> None:
        self.atts = atts
        self.with_flags = [*atts, FLAGS_ITEM] if not any(a.name == "FLAGS" for a in atts) else atts
        self.seen_now = seen_now
        self.needs_bytes = any(_needs_bytes(a) for a in atts)
        # A message list's FETCH (header fields) is answered from the stored header block.
        self.headers_only = self.needs_bytes and all(_is_header(a) for a in atts if _needs_bytes(a))
        self.structure = any(a.name in STRUCTURE_ITEMS for a in atts)


Rows = tuple[Sequence[MetaView], Mapping[str, bytes]]


async def _fetch_batches(
    s: Session, view: SelectedView, positions: list[int], atts: list[FetchAtt], seen_now: set[int]
) -> bool:
    """Answer batch by batch; True when some messages no longer exist (or cannot be read).
    Rows without bytes are small: the next batch's are read while this one is answered."""
    plan = _Plan(atts, seen_now)
    # Bodies go out after a small first batch: the client reads them while the rest is read.
    head = FIRST_BODY_BATCH if plan.needs_bytes and not plan.headers_only else BATCH
    batches = [positions[start : start + BATCH] for start in range(head, len(positions), BATCH)]
    if positions:
        batches.insert(0, positions[:head])
    ahead = not plan.needs_bytes or plan.headers_only
    missing = False
    pending: asyncio.Future[Rows] | None = None
    try:
        for k, batch in enumerate(batches):
            if pending is None:
                metas, first = await _rows(s, view, plan, view.uids_at(batch))
            else:
                metas, first = await pending
                pending = None
            if ahead and k + 1 < len(batches):
                pending = asyncio.ensure_future(_rows(s, view, plan, view.uids_at(batches[k + 1])))
            missing = len(metas) < len(batch) or missing
            missing = await _answer(s, view, plan, metas, dict(first)) or missing
    finally:
        if pending is not None:
            pending.cancel()
    return missing


async def _rows(s: Session, view: SelectedView, plan: _Plan, uids: Sequence[int]) -> Rows:
    """One batch's rows, with the leading bytes when the items need bytes."""
    account = s.require_account()
    # Bodies of messages the client listed before: at once, when nothing was expunged since
    # the view (the store knows the rows; the bytes are in the OS file cache).
    if plan.needs_bytes and not plan.headers_only and not plan.structure and not s.changed:
        now = account.bodies_now(view.folder_id, uids)
        if now is not None:
            return now
    if plan.needs_bytes and not plan.headers_only:
        return await account.message_meta_and_bytes(
            view.folder_id, uids, analysis=plan.structure, byte_limit=BYTES_PER_READ
        )
    metas = await account.message_meta(
        view.folder_id, uids, analysis=plan.structure, text=False, header=plan.headers_only
    )
    return metas, {}


async def _answer(
    s: Session, view: SelectedView, plan: _Plan, metas: Sequence[MetaView], read: dict[str, bytes]
) -> bool:
    """The FETCH responses of one batch; `read` holds the bytes that came with the rows (used
    by the first group). True when some messages cannot be answered."""
    account = s.require_account()
    needs_bytes, headers_only, structure = plan.needs_bytes, plan.headers_only, plan.structure
    missing = False
    fresh = await complete(account, metas, "structure") if structure else {}
    for group in byte_groups(metas) if needs_bytes else (metas,):
        bodies = {m.digest: read.pop(m.digest) for m in group if m.digest in read}
        unread = [
            m.digest for m in group if m.digest not in bodies and (m.header is None or not headers_only)
        ]
        if needs_bytes and unread:
            bodies.update(await account.read_messages(unread))
        for meta in group:
            i = view.position(meta.uid)
            data = bodies.get(meta.digest)
            if data is None and headers_only and meta.header is not None:
                data = from_cache(meta.header)
            if i is None or (needs_bytes and data is None) or (structure and _absent(meta, fresh)):
                missing = True
                continue
            message = _Message(meta, data, fresh.get(meta.digest))
            items = plan.with_flags if i in plan.seen_now else plan.atts
            # The line is made whole before any of it is emitted (an item may refuse), and the
            # message bytes go straight into the output buffer: one copy, not five.
            parts = [b"* %d FETCH (" % (i + 1)]
            for a in items:
                parts += _item(s, view, a, i, message)
                parts.append(b" ")
            parts[-1] = b")\r\n"
            for part in parts:
                s.emit(part)
            await s.flush_if_large()  # the client reads while the rest is made
    return missing


@lru_cache(maxsize=256)
def _label(att: FetchAtt) -> bytes:
    return att.response_name().encode("ascii")


def _is_header(att: FetchAtt) -> bool:
    """Items that the header block alone answers (RFC822.HEADER, BODY[HEADER…] of the message)."""
    if att.name == "RFC822.HEADER":
        return True
    return att.name == "BODY" and att.section is not None and is_root_header(att.section)


def _absent(meta: MetaView, fresh: dict[str, Analysis]) -> bool:
    return (meta.envelope is None or meta.bodystructure is None) and meta.digest not in fresh


def _item(s: Session, view: SelectedView, att: FetchAtt, i: int, m: _Message) -> tuple[bytes, ...]:
    """One item of a FETCH line, in pieces to be written one after the other (a literal's
    bytes are a piece of their own, never copied into a bigger string)."""
    name = att.name
    if name == "UID":
        return (b"UID %d" % view.uids[i],)
    if name == "FLAGS":
        return (b"FLAGS ", view.flags_item(i, not s.rev2))
    if name == "MODSEQ":
        return (b"MODSEQ (%d)" % view.modseqs[i],)
    if name == "INTERNALDATE":
        return (b"INTERNALDATE ", w.date_time(m.meta.internaldate))
    if name == "RFC822.SIZE":
        return (b"RFC822.SIZE %d" % m.meta.size,)
    if name in STRUCTURE_ITEMS:
        return (name.encode(), b" ", m.cached(name))
    if name == "RFC822":
        return _literal(b"RFC822 ", m.raw)
    if name in _RFC822_SECTIONS:
        return _literal(name.encode() + b" ", m.section(_RFC822_SECTIONS[name]))
    if att.section is None:  # BODY: the non-extensible structure
        return (b"BODY ", body_structure(m.raw, False, m.root))
    label = _label(att)
    if name == "BODY":
        return _literal(label + b" ", partial(m.section(att.section), att.partial))
    try:
        content = binary_content(m.raw, m.root, att.section.part)
    except SectionError as exc:
        raise no(exc.text, exc.code) from None
    if name == "BINARY.SIZE":
        return (label + b" %d" % len(content),)
    content = partial(content, att.partial)
    return _literal(label + b" ", content, w.binary_needs_literal8(content))


def _literal(label: bytes, data: bytes, binary: bool = False) -> tuple[bytes, ...]:
    return (label, w.literal_head(data, binary), data)
