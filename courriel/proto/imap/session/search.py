"""SEARCH and UID SEARCH, with ESEARCH results (RFC 4731) and SEARCHRES (RFC 5182).

RFC 9051 §6.4.4 (criteria; IMAP4rev2 answers ESEARCH), RFC 3501 §6.4.4 (the rev1 SEARCH
response, RECENT, NEW, OLD), RFC 7162 §3.1.5 (MODSEQ criterion and the MODSEQ of the result).

Evaluation works on bitsets over the view's positions (a Python int, bit i = message i+1):
flags, keywords, sequence and UID sets, \\Recent and MODSEQ come from the view in memory; size
and internal-date criteria go to the store as one indexed query each; text criteria (BODY, TEXT,
FROM …, HEADER, SENT*) are offered to the store, and otherwise answered from the persisted
searchable text (decoded MIME, search_text.py), loaded in batches only for the messages whose
outcome still depends on them: the tree is first evaluated three-valued (certainly true /
possibly true), so `UNSEEN TEXT x` reads the text of unseen messages only.
"""

from __future__ import annotations

import email.utils
import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from datetime import date
from typing import Final

from courriel.proto.imap import commands as c
from courriel.proto.imap import writer as w
from courriel.proto.imap.backend import SYSTEM_FLAGS, MetaView
from courriel.proto.imap.search_text import header_matches, normalise
from courriel.proto.imap.searchkeys import (
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    NotKey,
    OrKey,
    SearchKey,
    SeqKey,
    SizeKey,
    TextKey,
)
from courriel.proto.imap.sequence import format_set
from courriel.proto.imap.session.analysis import BATCH, complete
from courriel.proto.imap.session.context import Done, Session
from courriel.proto.imap.session.selected import RECENT, SelectedView

Leaf = SizeKey | DateKey | TextKey | HeaderKey
Predicate = Callable[[MetaView, str, str], bool]
_BITS: Final = {name: bit for bit, name in SYSTEM_FLAGS}
_ONES: Final = re.compile("1")


def _flag_table(bit: int, present: bool) -> bytes:
    return bytes(0x31 if bool(b & bit) == present else 0x30 for b in range(256))


_FLAG_TABLES: Final = {
    (bit, present): _flag_table(bit, present) for bit, _ in SYSTEM_FLAGS for present in (True, False)
}


def _from_digits(digits: bytes | bytearray) -> int:
    """ASCII '0'/'1' per position (position 0 first) → bitset."""
    return int(digits[::-1], 2) if digits else 0


def _from_positions(positions: Sequence[int], n: int) -> int:
    digits = bytearray(b"0") * n
    for i in positions:
        digits[i] = 0x31
    return _from_digits(digits)


def bit_positions(mask: int) -> list[int]:
    return [m.start() for m in _ONES.finditer(bin(mask)[:1:-1])]


class _Evaluation:
    """One SEARCH over one view: leaf bitsets, then (certain, possible) pairs per node."""

    def __init__(self, s: Session, view: SelectedView) -> None:
        self.s = s
        self.view = view
        self.n = len(view)
        self.all = (1 << self.n) - 1
        self.known: dict[SearchKey, int] = {}  # exact bitsets of leaves answered so far
        self.pending: dict[Leaf, Predicate] = {}  # leaves still to answer from message data
        self._index: dict[int, int] | None = None

    def _uid_mask(self, uids: Sequence[int]) -> int:
        if self._index is None:
            self._index = dict(zip(self.view.uids, range(self.n), strict=True))
        index = self._index
        return _from_positions([index[u] for u in uids if u in index], self.n)

    async def prepare(self, key: SearchKey) -> None:
        """Ask the store for the leaves it can answer; keep the rest for later."""
        if isinstance(key, AndKey):
            for item in key.keys:
                await self.prepare(item)
        elif isinstance(key, OrKey):
            await self.prepare(key.left)
            await self.prepare(key.right)
        elif isinstance(key, NotKey):
            await self.prepare(key.key)
        elif isinstance(key, SizeKey | DateKey | TextKey | HeaderKey) and key not in self.known:
            account, view = self.s.require_account(), self.view
            found = await account.search(view.folder_id, key) if not _sent(key) else None
            if found is not None:
                self.known[key] = self._uid_mask(found)
            else:
                self.pending[key] = _predicate(key)

    def evaluate(self, key: SearchKey) -> tuple[int, int]:
        """(certainly matching, possibly matching) bitsets; pending leaves are unknown."""
        if isinstance(key, AndKey):
            certain, possible = self.all, self.all
            for item in key.keys:
                t, p = self.evaluate(item)
                certain, possible = certain & t, possible & p
            return certain, possible
        if isinstance(key, OrKey):
            lt, lp = self.evaluate(key.left)
            rt, rp = self.evaluate(key.right)
            return lt | rt, lp | rp
        if isinstance(key, NotKey):
            t, p = self.evaluate(key.key)
            return self.all & ~p, self.all & ~t
        if key in self.known:
            mask = self.known[key]
            return mask, mask
        if key in self.pending:
            return 0, self.all
        mask = self._view_leaf(key)
        self.known[key] = mask
        return mask, mask

    def _view_leaf(self, key: SearchKey) -> int:
        view = self.view
        if isinstance(key, AllKey):
            return self.all
        if isinstance(key, SeqKey):
            return _from_positions(self.s.positions(key.seqset, key.uid), self.n)
        if isinstance(key, ModSeqKey):
            return _from_digits(bytes(0x31 if m >= key.modseq else 0x30 for m in view.modseqs))
        assert isinstance(key, FlagKey)
        if key.flag == RECENT:
            recent = 0
            for lo, hi in view.recent:
                a, b = bisect_left(view.uids, lo), bisect_left(view.uids, hi)
                recent |= ((1 << (b - a)) - 1) << a
            return recent if key.present else self.all & ~recent
        bit = _BITS.get(key.flag)
        if bit is not None:
            return _from_digits(view.flags.translate(_FLAG_TABLES[(bit, key.present)]))
        if key.flag.startswith("\\"):
            return 0 if key.present else self.all  # a flag that cannot be set
        folded = key.flag.casefold()
        ids = {k for k, kws in enumerate(view.kw_table) if any(x.casefold() == folded for x in kws)}
        yes, other = (0x31, 0x30) if key.present else (0x30, 0x31)
        return _from_digits(bytes(yes if k in ids else other for k in view.kw))

    async def resolve_pending(self, undecided: int) -> None:
        """Answer the pending leaves for the undecided messages from their data."""
        account, view = self.s.require_account(), self.view
        need_text = any(isinstance(k, TextKey | HeaderKey) or _sent(k) for k in self.pending)
        hits = {key: bytearray(b"0") * self.n for key in self.pending}
        uids = view.uids_at(bit_positions(undecided))
        for start in range(0, len(uids), BATCH):
            metas = await account.message_meta(
                view.folder_id, uids[start : start + BATCH], analysis=False, text=need_text
            )
            fresh = await complete(account, metas, "text") if need_text else {}
            for meta in metas:
                i = view.position(meta.uid)
                if i is None:
                    continue
                computed = fresh.get(meta.digest)
                source = computed if computed is not None else meta
                headers, text = source.headers or "", source.text or ""
                for key, test in self.pending.items():
                    if test(meta, headers, text):
                        hits[key][i] = 0x31
        for key, digits in hits.items():
            self.known[key] = _from_digits(digits)
        self.pending.clear()


def _sent(key: SearchKey) -> bool:
    return isinstance(key, DateKey) and key.sent


def _compare(day: date, op: str, wanted: date) -> bool:
    """RFC 9051 §6.4.4: dates compare by day only."""
    return day < wanted if op == "BEFORE" else day == wanted if op == "ON" else day >= wanted


def _sent_date(headers: str) -> date | None:
    for line in headers.split("\n"):
        if line.startswith("date: "):
            parsed = email.utils.parsedate_tz(line[6:])
            if parsed is not None:
                try:
                    return date(parsed[0], parsed[1], parsed[2])
                except ValueError:
                    return None
    return None


def _predicate(key: Leaf) -> Predicate:
    """How one leaf is answered from a message's row and searchable text."""
    if isinstance(key, SizeKey):
        size, larger = key.size, key.larger
        return lambda m, h, t: m.size > size if larger else m.size < size
    if isinstance(key, DateKey):
        op, day = key.op, key.day
        if key.sent:
            return lambda m, h, t: (d := _sent_date(h)) is not None and _compare(d, op, day)
        return lambda m, h, t: _compare(m.internaldate.date(), op, day)
    if isinstance(key, HeaderKey):
        name, value = key.name, key.value
        return lambda m, h, t: header_matches(h, name, value)
    needle, field = normalise(key.value), key.field
    if field == "BODY":
        return lambda m, h, t: needle in t
    if field == "TEXT":
        return lambda m, h, t: needle in t or needle in h
    value = key.value
    return lambda m, h, t: header_matches(h, field, value)


def _has_modseq(key: SearchKey) -> bool:
    if isinstance(key, AndKey):
        return any(_has_modseq(k) for k in key.keys)
    if isinstance(key, OrKey):
        return _has_modseq(key.left) or _has_modseq(key.right)
    if isinstance(key, NotKey):
        return _has_modseq(key.key)
    return isinstance(key, ModSeqKey)


async def search(s: Session, cmd: c.Search) -> Done:
    view = s.require_selected()
    returns = cmd.returns
    try:
        positions = await _matching(s, view, cmd.key)
    except BaseException:
        if returns is not None and "SAVE" in returns:
            s.saved = []  # RFC 5182 §2.1: a failed SEARCH (SAVE) leaves $ empty
        raise
    modseq = None
    if _has_modseq(cmd.key):
        s.enable_condstore()
        modseq = max((view.modseqs[i] for i in positions), default=None)
    numbers = view.uids_at(positions) if cmd.uid else [i + 1 for i in positions]
    if returns is None and s.rev2:
        returns = frozenset({"ALL"})  # RFC 9051 §6.4.4: IMAP4rev2 answers ESEARCH
    if returns is None:
        s.emit(w.search(numbers, modseq))
        return Done("SEARCH completed")
    if "SAVE" in returns:
        uids = view.uids_at(positions)
        if returns & {"MIN", "MAX"} and not returns & {"ALL", "COUNT"}:
            # RFC 5182 §2.4: with only MIN and/or MAX, $ holds just those.
            ends = (uids[:1] if "MIN" in returns else []) + (uids[-1:] if "MAX" in returns else [])
            uids = sorted(set(ends))
        s.saved = uids
        if returns == {"SAVE"}:
            return Done("SEARCH completed")  # RFC 5182 §2.4: nothing to show
    results: list[tuple[str, str]] = []
    if numbers and "MIN" in returns:
        results.append(("MIN", str(numbers[0])))
    if numbers and "MAX" in returns:
        results.append(("MAX", str(numbers[-1])))
    if "COUNT" in returns:
        results.append(("COUNT", str(len(numbers))))
    if numbers and "ALL" in returns:
        results.append(("ALL", format_set(numbers)))
    if modseq is not None:
        results.append(("MODSEQ", str(modseq)))
    s.emit(w.esearch(cmd.tag, cmd.uid, results))
    return Done("SEARCH completed")


async def _matching(s: Session, view: SelectedView, key: SearchKey) -> list[int]:
    evaluation = _Evaluation(s, view)
    await evaluation.prepare(key)
    certain, possible = evaluation.evaluate(key)
    undecided = possible & ~certain
    if evaluation.pending and undecided:
        await evaluation.resolve_pending(undecided)
        certain, _ = evaluation.evaluate(key)
    return bit_positions(certain)
