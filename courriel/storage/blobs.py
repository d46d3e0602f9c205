"""Content-addressed message bytes, written once and shared by the transport queue and the mailbox store.

A blob's name is the SHA-256 of its bytes, so the queue and every mailbox that holds a copy of a
message point at one file (DESIGN.md §3). Bodies stay out of SQL rows: both drivers materialise
BLOBs whole (python-ecosystem.md §6). A blob is durable before `put` returns: written to a
temporary file, fsync'ed, renamed into place, and its directory fsync'ed.

Each mailbox database has a store of its own, so that it can be mounted on any Mailbox server
that reaches it (`database_blobs`): a directory beside a SQLite file (filled by hard links from
the queue's store, so a body is still written once), or a table inside a PostgreSQL database
(storage/pgblobs.py). Databases created before that read older bodies through `fallback`, the
server's shared store.

Garbage collection (transport/queue/gc.py, mailbox/blobgc.py) deletes a blob only when it is old
and unreferenced. A blob's age is its last write: every write that finds the blob already there
(`put`, `copy_from`, a hard link) touches it, so a body about to be referenced again looks young.
`collect` renames a blob aside before it looks at its age a last time, so a writer that touches it
either makes it young in time or finds it gone and writes it anew; never one that is deleted under
a commit.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import itertools
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from courriel.storage.engine import IN_MEMORY, sqlite_path

# A blob written (or touched) more recently than this is never deleted as unreferenced: the
# commit that will reference it may still be on its way (queue after fsync, delivery after link).
WRITE_GRACE = 3600.0


@dataclass(frozen=True, slots=True)
class BlobRef:
    digest: str  # hex SHA-256
    size: int


log = logging.getLogger(__name__)
DIGEST = re.compile(r"[0-9a-f]{64}")
TRASH = "gc."  # prefix of a blob renamed aside by `collect` (in tmp/)
_trash_names = itertools.count()
NOWAIT = getattr(os, "RWF_NOWAIT", None)  # Linux: reads that fail rather than wait for the disk
IO_THREADS = 16  # concurrent messages' fsyncs overlap instead of queueing behind each other


class BlobStore:
    """Blobs under `root/ab/cd/abcd…`; safe for several processes (rename is atomic)."""

    def __init__(self, root: Path, *, fallback: BlobStore | None = None) -> None:
        self.root = root
        self.fallback = fallback  # read-only: where bodies stored before this store existed live
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        self._io = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="blobs")

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def _put(self, data: bytes, digest: str) -> None:
        final = self.path(digest)
        if _touch(final):
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "tmp" / f"{digest}.{os.getpid()}.{id(data)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        dfd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def put_sync(self, data: bytes) -> BlobRef:
        digest = hashlib.sha256(data).hexdigest()
        self._put(data, digest)
        return BlobRef(digest, len(data))

    async def put(self, data: bytes) -> BlobRef:
        """Store bytes durably (in a thread: fsync must not block the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._io, self.put_sync, data)

    def get_sync(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            if self.fallback is None:
                raise
            return self.fallback.get_sync(digest)

    async def get(self, digest: str) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._io, self.get_sync, digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists() or (self.fallback is not None and self.fallback.exists(digest))

    def remove(self, digest: str) -> None:
        """Delete a blob no store references any more (the caller checked)."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass

    def digests(self) -> list[str]:
        """Every stored digest (for garbage collection and checks)."""
        return [p.name for p in self.root.glob("??/??/*") if p.is_file()]

    # Additions for per-database stores: the same calls whatever holds the bytes.

    def owns(self, digest: str) -> bool:
        """Stored here, not only readable through the fallback."""
        return self.path(digest).exists()

    async def has(self, digest: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._io, self.owns, digest)

    def get_many_sync(self, digests: Iterable[str]) -> dict[str, bytes]:
        """The bytes of each digest found; missing ones are logged and left out."""
        found: dict[str, bytes] = {}
        for digest in dict.fromkeys(digests):
            try:
                found[digest] = self.get_sync(digest)
            except OSError:
                log.error("message bytes %s are missing from the blob store %s", digest, self.root)
        return found

    async def get_many(self, digests: Iterable[str]) -> dict[str, bytes]:
        """`get_many_sync` in one worker-thread hop."""
        return await asyncio.get_running_loop().run_in_executor(self._io, self.get_many_sync, digests)

    async def copy_from(self, source: BlobStore, ref: BlobRef) -> None:
        """Make `ref` durable here, taken from `source` (local delivery, mailbox and database moves).

        Between two directories on one file system the body is hard-linked, not copied, so it is
        still written once; otherwise it is copied. A no-op when it is here already.
        """
        if source is self or await self.refresh(ref.digest):
            return
        path = source.locate(ref.digest)
        if path is not None:
            await asyncio.get_running_loop().run_in_executor(self._io, self._adopt, path, ref.digest)
            return
        await self.put(await source.get(ref.digest))

    def locate(self, digest: str) -> Path | None:
        """The file holding the digest, here or in the fallback; None if neither has it."""
        path = self.path(digest)
        if path.exists():
            return path
        return self.fallback.locate(digest) if self.fallback is not None else None

    def _adopt(self, path: Path, digest: str) -> None:
        final = self.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a link that exists may be collected before it is touched: link again
            try:
                os.link(path, final)
                break
            except FileExistsError:
                if _touch(final):
                    return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                self._put(path.read_bytes(), digest)  # another file system: a real, fsync'ed copy
                return
        else:
            raise OSError(f"blob {digest} could not be linked into {self.root}")
        # The new name shares the source's inode, and its age: make it young, it is about to be used.
        os.utime(final)
        dfd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    async def discard(self, digests: Iterable[str]) -> None:
        """Remove blobs stored here (never from the fallback) that nothing references any more."""
        wanted = list(digests)

        def remove_all() -> None:
            for digest in wanted:
                self.remove(digest)

        await asyncio.get_running_loop().run_in_executor(self._io, remove_all)

    # Garbage collection: listing by age, touching, deleting what is still old.

    async def refresh(self, digest: str) -> bool:
        """Mark a blob stored here as just written (it is about to be referenced); False if absent."""
        return await asyncio.get_running_loop().run_in_executor(self._io, _touch, self.path(digest))

    async def held(self, digests: Iterable[str]) -> set[str]:
        """The digests among `digests` stored here (not through the fallback)."""
        wanted = list(digests)
        return await asyncio.get_running_loop().run_in_executor(
            self._io, lambda: {d for d in wanted if self.owns(d)}
        )

    async def stale(self, before: float) -> list[BlobRef]:
        """Blobs last written (content or links) before `before`, a Unix time: collection candidates."""
        return await asyncio.get_running_loop().run_in_executor(self._io, self._stale, before)

    def _stale(self, before: float) -> list[BlobRef]:
        self._recover_trash()
        found = []
        for path in self.root.glob("??/??/*"):
            if not DIGEST.fullmatch(path.name):
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            # ctime too: a new hard link changes it before its writer touches the mtime.
            if max(st.st_mtime, st.st_ctime) < before:
                found.append(BlobRef(path.name, st.st_size))
        return found

    async def collect(self, digests: Iterable[str], before: float) -> list[BlobRef]:
        """Delete the given blobs that are still older than `before`; returns those deleted.

        The caller found them unreferenced after listing them. Each is renamed aside first, then
        its age read again: a writer that touched it meanwhile keeps it (it is put back).
        """
        wanted = list(digests)
        return await asyncio.get_running_loop().run_in_executor(
            self._io, lambda: [r for d in wanted if (r := self._collect_one(d, before)) is not None]
        )

    def _collect_one(self, digest: str, before: float) -> BlobRef | None:
        final = self.path(digest)
        trash = self.root / "tmp" / f"{TRASH}{digest}.{os.getpid()}.{next(_trash_names)}"
        try:
            os.rename(final, trash)
            st = trash.stat()
        except FileNotFoundError:
            return None  # gone already (another collector)
        if st.st_mtime >= before:
            _put_back(trash, final)
            return None
        try:
            trash.unlink()
        except FileNotFoundError:
            return None
        return BlobRef(digest, st.st_size)

    def _recover_trash(self) -> None:
        """Put back blobs a collector renamed aside and never got to judge (it died)."""
        for trash in (self.root / "tmp").glob(f"{TRASH}*"):
            digest = trash.name[len(TRASH) :].split(".", 1)[0]
            if DIGEST.fullmatch(digest):
                _put_back(trash, self.path(digest))

    async def sweep_temporary(self, before: float) -> int:
        """Delete temporary files older than `before` that a crashed writer left behind; returns how many."""

        def sweep() -> int:
            count = 0
            for path in (self.root / "tmp").iterdir():
                if path.name.startswith(TRASH):
                    continue
                try:
                    if path.stat().st_mtime < before:
                        path.unlink()
                        count += 1
                except FileNotFoundError:
                    continue
            return count

        return await asyncio.get_running_loop().run_in_executor(self._io, sweep)

    def same_store(self, other: BlobStore) -> bool:
        """True when `other` reads and writes the same bytes as this store."""
        return other is self or (type(other) is BlobStore and type(self) is BlobStore and other.root == self.root)

    async def close(self) -> None:
        """Release what the store holds (a file store holds nothing but its threads)."""
        self._io.shutdown(wait=False)


@dataclass(slots=True)
class Sweep:
    """What one garbage collection did to one store (or would do, in a dry run)."""

    store: str  # for people: "shared store /var/lib/courriel/blobs", "database DB01"
    blobs: int = 0
    bytes: int = 0  # the removed blobs' sizes (a body still hard-linked elsewhere keeps its space)
    temporary: int = 0  # leftovers of crashed writes
    skipped: str | None = None  # why the store was left alone


async def sweep_unreferenced(
    store: BlobStore,
    label: str,
    references: Callable[[], Awaitable[set[str]]],
    before: float,
    *,
    dry_run: bool = False,
) -> Sweep:
    """Delete the blobs of `store` last written before `before` that `references` does not name.

    References are read after the listing, and `collect` checks each blob's age again: a blob
    written, or found and touched, after the listing is never deleted.
    """
    stale = await store.stale(before)
    used = await references() if stale else set()
    doomed = [ref for ref in stale if ref.digest not in used]
    gone = doomed if dry_run else await store.collect([ref.digest for ref in doomed], before)
    temporary = 0 if dry_run else await store.sweep_temporary(before)
    return Sweep(label, len(gone), sum(ref.size for ref in gone), temporary)


def _touch(path: Path) -> bool:
    """Set a blob's mtime to now; False if there is no such file."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _put_back(trash: Path, final: Path) -> None:
    """Restore a blob renamed aside; a writer may have stored it anew meanwhile (then it stays)."""
    try:
        os.link(trash, final)
    except FileExistsError:
        pass
    except FileNotFoundError:
        return  # another collector put it back already
    try:
        trash.unlink()
    except FileNotFoundError:
        pass


async def open_database_blobs(url: str, base_dir: Path | None, shared: BlobStore) -> BlobStore:
    """The blob store of the mailbox database at `url`, reading older bodies from `shared`.

    SQLite `databases/DB01.db` keeps its bodies in `databases/DB01.blobs/`; a PostgreSQL database
    in tables of its own. An in-memory database uses `shared`. Close it (unless it is `shared`)
    when the database is closed.
    """
    if sqlite_path(url) == IN_MEMORY:
        return shared
    path = sqlite_path(url, base_dir)
    if path is not None:
        return BlobStore(path.with_suffix(".blobs"), fallback=shared)
    from courriel.storage.pgblobs import PgBlobStore  # PostgreSQL only; keeps asyncpg out of file stores

    return await PgBlobStore.open(url, fallback=shared)


class CachedBlobs:
    """Blob bytes read only from the OS file cache (`get`), looking where `BlobStore.get_sync`
    looks: the store, then its fallbacks. Blobs are named by their digest, so the bytes are
    the same in whichever store holds them: the one that held the last blob is tried first
    (bodies delivered before a database had a store of its own all live in the fallback)."""

    def __init__(self, blobs: BlobStore) -> None:
        # With BlobStore.path's layout as a string format: a pathlib join costs more than the read.
        self._stores: list[tuple[BlobStore, str | None]] = []
        store: BlobStore | None = blobs
        while store is not None:
            self._stores.append((store, _path_format(store)))
            store = store.fallback

    def get(self, digest: str, size: int) -> bytes | None:
        """The blob's `size` bytes if all are in the OS file cache, else None (never waits for
        the disk). A file of another size (or none) is None too: the ordinary read decides."""
        if NOWAIT is None:
            return None
        for k, (store, fmt) in enumerate(self._stores):
            try:
                path = store.path(digest) if fmt is None else fmt % (digest[:2], digest[2:4], digest)
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            except OSError:
                return None
            if k:
                self._stores.insert(0, self._stores.pop(k))
            break
        else:
            return None
        try:
            buffer = bytearray(size + 1)  # one more: a longer file is not the row's bytes
            read = os.preadv(fd, [buffer], 0, NOWAIT)
        except OSError:  # EAGAIN: not cached; EOPNOTSUPP: a file system without RWF_NOWAIT
            return None
        finally:
            os.close(fd)
        return bytes(memoryview(buffer)[:size]) if read == size else None


def _path_format(store: BlobStore) -> str | None:
    """`root/ab/cd/abcd…` as a %-format, when the store lays its files out as BlobStore does."""
    if type(store).path is not BlobStore.path:
        return None
    return os.path.join(os.fspath(store.root).replace("%", "%%"), "%s", "%s", "%s")
