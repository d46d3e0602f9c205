"""An in-memory mailbox behind the IMAP backend Protocols, for session transcript tests.

It follows the store's rules where the session depends on them: UIDs and MODSEQs per folder,
one new MODSEQ per changed message and one per expunge (recorded for QRESYNC), keywords kept
sorted and de-duplicated case-insensitively, CREATE making parents, DELETE of a folder with
children leaving a \\Noselect placeholder, change notifications after each write. It counts
the calls the performance rules care about (metadata queries, message reads).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from courriel.proto.imap.backend import (
    DELETED,
    SEEN,
    Account,
    Analysis,
    BackendError,
    LoginRefused,
    StoreMode,
)
from courriel.proto.imap.mime import header_block_end
from courriel.proto.imap.searchkeys import DateKey, SearchKey, SizeKey

WHEN = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass
class Message:
    uid: int
    flags: int
    keywords: tuple[str, ...]
    modseq: int
    internaldate: datetime
    digest: str
    size: int


@dataclass
class Folder:
    id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int = 1
    highestmodseq: int = 1
    noselect: bool = False
    messages: dict[int, Message] = field(default_factory=dict)
    expunged: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class FolderRow:
    id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    subscribed: bool
    messages: int
    unseen: int
    deleted: int
    size: int
    has_children: bool
    noselect: bool


@dataclass(frozen=True)
class Snapshot:
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    uids: list[int]
    flags: list[int]
    keywords: list[tuple[str, ...]]
    modseqs: list[int]


@dataclass(frozen=True)
class Changes:
    changed: list[tuple[int, int, tuple[str, ...], int]]
    expunged: list[int]
    highestmodseq: int
    uidnext: int


@dataclass(frozen=True)
class Meta:
    uid: int
    internaldate: datetime
    size: int
    digest: str
    envelope: str | None
    bodystructure: str | None
    headers: str | None
    text: str | None
    header: str | None = None


@dataclass(frozen=True)
class StoreResult:
    updated: list[tuple[int, int, tuple[str, ...], int]]
    failed_unchanged_since: list[int]


@dataclass(frozen=True)
class CopyResult:
    uidvalidity: int
    mapping: list[tuple[int, int]]


def normalize_keywords(keywords: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for k in keywords:
        seen.setdefault(k.casefold(), k)
    return tuple(seen[k] for k in sorted(seen))


def apply_store(
    mode: StoreMode, flags: int, keywords: tuple[str, ...], bits: int, kws: tuple[str, ...]
) -> tuple[int, tuple[str, ...]]:
    if mode == "replace":
        return bits, normalize_keywords(kws)
    if mode == "add":
        return flags | bits, normalize_keywords(keywords + kws)
    drop = {k.casefold() for k in kws}
    return flags & ~bits, tuple(k for k in keywords if k.casefold() not in drop)


class Mailbox:
    """One user's mailbox, shared by every session of that user."""

    def __init__(self, *, recent_from_start: bool = True) -> None:
        self.moved_away = False  # the whole mailbox went to another database (mailbox move)
        self.folders: dict[str, Folder] = {}
        self.subscriptions: set[str] = set()
        self.blobs: dict[str, bytes] = {}
        self.analysis: dict[str, Analysis] = {}
        self.watchers: dict[int, list[Callable[[], None]]] = {}
        self.recent: dict[int, int] = {}
        self.recent_from_start = recent_from_start
        self.header_blocks = True  # keep each message's header block, as the real store does
        self.calls: Counter[str] = Counter()
        self._ids = 0
        self._validity = 1000
        for name, use in (
            ("INBOX", None),
            ("Sent Items", "\\Sent"),
            ("Drafts", "\\Drafts"),
            ("Deleted Items", "\\Trash"),
            ("Junk Email", "\\Junk"),
        ):
            self._new_folder(name, use)
            self.subscriptions.add(name)

    # ---- helpers for tests ---------------------------------------------------------------

    def _new_folder(self, name: str, use: str | None) -> Folder:
        self._ids += 1
        self._validity += 1
        folder = Folder(self._ids, name, use, self._validity)
        self.folders[name] = folder
        return folder

    def by_id(self, folder_id: int) -> Folder:
        for f in self.folders.values():
            if f.id == folder_id and not f.noselect:
                return f
        raise BackendError("Mailbox does not exist", "NONEXISTENT")

    def notify(self, folder_id: int) -> None:
        for wake in list(self.watchers.get(folder_id, ())):
            wake()

    def deliver(
        self, folder: str, data: bytes, flags: int = 0, keywords: Sequence[str] = (), when: datetime = WHEN
    ) -> int:
        """A message arriving from elsewhere (SMTP, another session)."""
        f = self.folders[folder]
        digest = hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        f.highestmodseq += 1
        uid = f.uidnext
        f.uidnext += 1
        f.messages[uid] = Message(
            uid, flags, normalize_keywords(keywords), f.highestmodseq, when, digest, len(data)
        )
        self.notify(f.id)
        return uid

    def set_flags(self, folder: str, uid: int, flags: int, keywords: Sequence[str] = ()) -> None:
        f = self.folders[folder]
        f.highestmodseq += 1
        m = f.messages[uid]
        m.flags, m.keywords, m.modseq = flags, normalize_keywords(keywords), f.highestmodseq
        self.notify(f.id)

    def remove(self, folder: str, uids: Sequence[int]) -> None:
        f = self.folders[folder]
        f.highestmodseq += 1
        for uid in uids:
            del f.messages[uid]
            f.expunged.append((uid, f.highestmodseq))
        self.notify(f.id)

    def row(self, f: Folder) -> FolderRow:
        msgs = list(f.messages.values())
        prefix = f.name + "/"
        return FolderRow(
            f.id,
            f.name,
            f.special_use,
            f.uidvalidity,
            f.uidnext,
            f.highestmodseq,
            f.name in self.subscriptions,
            len(msgs),
            sum(1 for m in msgs if not m.flags & SEEN),
            sum(1 for m in msgs if m.flags & DELETED),
            sum(m.size for m in msgs),
            any(n.startswith(prefix) for n in self.folders),
            f.noselect,
        )


def canonical(name: str) -> str:
    parts = name.split("/")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return "/".join(parts)


class FakeAccount:
    """The backend `Account` over a `Mailbox`."""

    def __init__(self, mailbox: Mailbox, user: str) -> None:
        self.box = mailbox
        self._user = user
        self.released = False

    @property
    def user(self) -> str:
        return self._user

    async def list_folders(self) -> Sequence[FolderRow]:
        return [self.box.row(f) for _, f in sorted(self.box.folders.items())]

    async def list_subscriptions(self) -> Sequence[str]:
        return sorted(self.box.subscriptions)

    async def get_folder(self, name: str) -> FolderRow | None:
        f = self.box.folders.get(canonical(name))
        return None if f is None else self.box.row(f)

    async def create_folder(self, name: str, special_use: str | None) -> None:
        name = canonical(name.rstrip("/"))
        if not name or any(not p for p in name.split("/")) or "*" in name or "%" in name:
            raise BackendError("Invalid mailbox name", "CANNOT")
        existing = self.box.folders.get(name)
        if existing is not None and not existing.noselect:
            raise BackendError("Mailbox already exists", "ALREADYEXISTS")
        if special_use not in (None, "\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive"):
            raise BackendError("Special-use attribute not supported", "USEATTR")
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent not in self.box.folders:
                self.box._new_folder(parent, None)
        if existing is not None:
            existing.noselect = False
            existing.special_use = special_use
        else:
            self.box._new_folder(name, special_use)

    async def delete_folder(self, name: str) -> None:
        name = canonical(name)
        if name == "INBOX":
            raise BackendError("INBOX cannot be deleted", "CANNOT")
        f = self.box.folders.get(name)
        if f is None:
            raise BackendError("Mailbox does not exist", "NONEXISTENT")
        if any(n.startswith(name + "/") for n in self.box.folders):
            f.noselect, f.messages = True, {}
        else:
            del self.box.folders[name]
        self.box.notify(f.id)

    async def rename_folder(self, old: str, new: str) -> None:
        old, new = canonical(old), canonical(new)
        if old not in self.box.folders:
            raise BackendError("Mailbox does not exist", "NONEXISTENT")
        if new in self.box.folders:
            raise BackendError("Mailbox already exists", "ALREADYEXISTS")
        for name in [n for n in self.box.folders if n == old or n.startswith(old + "/")]:
            f = self.box.folders.pop(name)
            f.name = new + name[len(old) :]
            self.box.folders[f.name] = f

    async def subscribe(self, name: str, on: bool) -> None:
        (self.box.subscriptions.add if on else self.box.subscriptions.discard)(canonical(name))

    async def snapshot(self, folder_id: int) -> Snapshot:
        f = self.box.by_id(folder_id)
        msgs = [f.messages[u] for u in sorted(f.messages)]
        return Snapshot(
            f.uidvalidity,
            f.uidnext,
            f.highestmodseq,
            [m.uid for m in msgs],
            [m.flags for m in msgs],
            [m.keywords for m in msgs],
            [m.modseq for m in msgs],
        )

    async def changes_since(self, folder_id: int, modseq: int) -> Changes:
        self.box.calls["changes_since"] += 1
        f = self.box.by_id(folder_id)
        changed = [
            (m.uid, m.flags, m.keywords, m.modseq) for u, m in sorted(f.messages.items()) if m.modseq > modseq
        ]
        gone = sorted(uid for uid, ms in f.expunged if ms > modseq)
        return Changes(changed, gone, f.highestmodseq, f.uidnext)

    async def moved_away(self) -> bool:
        return self.box.moved_away

    async def highest_modseq(self, folder_id: int) -> int | None:
        self.box.calls["highest_modseq"] += 1
        try:
            return self.box.by_id(folder_id).highestmodseq
        except BackendError:
            return None

    async def message_meta(
        self, folder_id: int, uids: Sequence[int], *, analysis: bool, text: bool, header: bool = False
    ) -> Sequence[Meta]:
        self.box.calls["message_meta"] += 1
        self.box.calls["meta_rows"] += len(uids)
        f = self.box.by_id(folder_id)
        out = []
        for uid in sorted(set(uids)):
            m = f.messages.get(uid)
            if m is None:
                continue
            a = self.box.analysis.get(m.digest, Analysis(m.digest))
            block = None
            if header and self.box.header_blocks and m.digest in self.box.blobs:
                data = self.box.blobs[m.digest]
                block = data[: header_block_end(data, 0, len(data))[1]].decode("latin-1")
            out.append(
                Meta(
                    uid,
                    m.internaldate,
                    m.size,
                    m.digest,
                    a.envelope,
                    a.bodystructure,
                    a.headers,
                    a.text,
                    block,
                )
            )
        return out

    def bodies_now(self, folder_id: int, uids: Sequence[int]) -> None:
        return None  # every read is a round trip here: the sessions' counts stay exact

    async def message_meta_and_bytes(
        self, folder_id: int, uids: Sequence[int], *, analysis: bool, byte_limit: int
    ) -> tuple[Sequence[Meta], dict[str, bytes]]:
        self.box.calls["message_meta_and_bytes"] += 1
        metas = await self.message_meta(folder_id, uids, analysis=analysis, text=False)
        self.box.calls["message_meta"] -= 1
        wanted: list[str] = []
        total = 0
        for meta in metas:
            if wanted and total + meta.size > byte_limit:
                break
            wanted.append(meta.digest)
            total += meta.size
        self.box.calls["messages_read"] += len(wanted)
        return metas, {d: self.box.blobs[d] for d in wanted if d in self.box.blobs}

    async def read_messages(self, digests: Sequence[str]) -> dict[str, bytes]:
        self.box.calls["read_messages"] += 1
        self.box.calls["messages_read"] += len(digests)
        return {d: self.box.blobs[d] for d in digests if d in self.box.blobs}

    async def save_analysis(self, entries: Sequence[Analysis]) -> None:
        self.box.calls["save_analysis"] += 1
        for e in entries:
            old = self.box.analysis.get(e.digest, Analysis(e.digest))
            self.box.analysis[e.digest] = replace(
                old,
                **{
                    k: v
                    for k, v in (
                        ("envelope", e.envelope),
                        ("bodystructure", e.bodystructure),
                        ("headers", e.headers),
                        ("text", e.text),
                    )
                    if v is not None
                },
            )

    async def search(self, folder_id: int, key: SearchKey) -> Sequence[int] | None:
        self.box.calls["search"] += 1
        f = self.box.by_id(folder_id)
        if isinstance(key, SizeKey):
            return [
                u
                for u, m in sorted(f.messages.items())
                if (m.size > key.size if key.larger else m.size < key.size)
            ]
        if isinstance(key, DateKey) and not key.sent:
            day = key.day
            ops = {"BEFORE": lambda d: d < day, "ON": lambda d: d == day, "SINCE": lambda d: d >= day}
            return [u for u, m in sorted(f.messages.items()) if ops[key.op](m.internaldate.date())]
        return None

    async def store_flags(
        self,
        folder_id: int,
        uids: Sequence[int],
        mode: StoreMode,
        flags: int,
        keywords: Sequence[str],
        unchanged_since: int | None,
    ) -> StoreResult:
        f = self.box.by_id(folder_id)
        updated, failed = [], []
        for uid in sorted(set(uids)):
            m = f.messages.get(uid)
            if m is None:
                continue
            if unchanged_since is not None and m.modseq > unchanged_since:
                failed.append(uid)
                continue
            new_flags, new_kw = apply_store(mode, m.flags, m.keywords, flags, tuple(keywords))
            if (new_flags, new_kw) == (m.flags, m.keywords):
                continue
            f.highestmodseq += 1
            m.flags, m.keywords, m.modseq = new_flags, new_kw, f.highestmodseq
            updated.append((uid, new_flags, new_kw, m.modseq))
        if updated:
            self.box.notify(f.id)
        return StoreResult(updated, failed)

    async def append(
        self, folder: str, message: bytes, flags: int, keywords: Sequence[str], internal_date: datetime | None
    ) -> tuple[int, int]:
        f = self.box.folders.get(canonical(folder))
        if f is None or f.noselect:
            raise BackendError("Mailbox does not exist", "TRYCREATE")
        uid = self.box.deliver(f.name, message, flags, keywords, internal_date or WHEN)
        return f.uidvalidity, uid

    async def _transfer(self, source: int, uids: Sequence[int], target: int, move: bool) -> CopyResult:
        src, dst = self.box.by_id(source), self.box.by_id(target)
        mapping = []
        for uid in sorted(set(uids)):
            m = src.messages.get(uid)
            if m is None:
                continue
            dst.highestmodseq += 1
            new = replace(m, uid=dst.uidnext, modseq=dst.highestmodseq)
            dst.messages[new.uid] = new
            dst.uidnext += 1
            mapping.append((uid, new.uid))
        if mapping:
            self.box.notify(dst.id)
        if move and mapping:
            self.box.remove(src.name, [s for s, _ in mapping])
        return CopyResult(dst.uidvalidity, mapping)

    async def copy(self, source: int, uids: Sequence[int], target: int) -> CopyResult:
        return await self._transfer(source, uids, target, False)

    async def move(self, source: int, uids: Sequence[int], target: int) -> CopyResult:
        return await self._transfer(source, uids, target, True)

    async def expunge(self, folder_id: int, uids: Sequence[int] | None) -> Sequence[int]:
        f = self.box.by_id(folder_id)
        wanted = set(f.messages) if uids is None else set(uids) & set(f.messages)
        gone = sorted(u for u in wanted if f.messages[u].flags & DELETED)
        if gone:
            self.box.remove(f.name, gone)
        return gone

    def watch(self, folder_id: int, wake: Callable[[], None]) -> _Watch:
        self.box.watchers.setdefault(folder_id, []).append(wake)
        return _Watch(self.box.watchers[folder_id], wake)

    def claim_recent(self, folder_id: int, uidnext: int, claim: bool) -> int:
        first = self.box.recent.setdefault(folder_id, 1 if self.box.recent_from_start else uidnext)
        if claim and uidnext > first:
            self.box.recent[folder_id] = uidnext
        return min(first, uidnext)

    def release(self) -> None:
        self.released = True


class _Watch:
    def __init__(self, group: list[Callable[[], None]], wake: Callable[[], None]) -> None:
        self.group, self.wake = group, wake

    def close(self) -> None:
        if self.wake in self.group:
            self.group.remove(self.wake)


class FakeAuthenticator:
    """alice/secret (and any user in `users`) log into their `Mailbox`."""

    def __init__(self, users: dict[str, tuple[str, Mailbox]] | None = None) -> None:
        self.users = users or {"alice": ("secret", Mailbox())}
        self.accounts: list[FakeAccount] = []
        self.attempts: list[tuple[str, str]] = []

    async def login(self, username: str, password: str, peer: str) -> Account | LoginRefused:
        self.attempts.append((username, peer))
        entry = self.users.get(username)
        if entry is None or entry[0] != password:
            return LoginRefused("AUTHENTICATIONFAILED", "Authentication failed")
        account = FakeAccount(entry[1], username)
        self.accounts.append(account)
        return account
