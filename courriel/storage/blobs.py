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
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class BlobRef:
    digest: str  # hex SHA-256
    size: int


log = logging.getLogger(__name__)
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
        if final.exists():
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

    async def get_many(self, digests: Iterable[str]) -> dict[str, bytes]:
        """The bytes of each digest found, in one worker-thread hop; missing ones are logged and left out."""

        def read_all() -> dict[str, bytes]:
            found: dict[str, bytes] = {}
            for digest in dict.fromkeys(digests):
                try:
                    found[digest] = self.get_sync(digest)
                except OSError:
                    log.error("message bytes %s are missing from the blob store %s", digest, self.root)
            return found

        return await asyncio.get_running_loop().run_in_executor(self._io, read_all)

    async def copy_from(self, source: BlobStore, ref: BlobRef) -> None:
        """Make `ref` durable here, taken from `source` (local delivery, mailbox and database moves).

        Between two directories on one file system the body is hard-linked, not copied, so it is
        still written once; otherwise it is copied. A no-op when it is here already.
        """
        if source is self or await self.has(ref.digest):
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
        try:
            os.link(path, final)
        except FileExistsError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            self._put(path.read_bytes(), digest)  # another file system: a real, fsync'ed copy
            return
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

    async def close(self) -> None:
        """Release what the store holds (a file store holds nothing but its threads)."""
        self._io.shutdown(wait=False)


async def open_database_blobs(url: str, base_dir: Path | None, shared: BlobStore) -> BlobStore:
    """The blob store of the mailbox database at `url`, reading older bodies from `shared`.

    SQLite `databases/DB01.db` keeps its bodies in `databases/DB01.blobs/`; a PostgreSQL database
    in tables of its own. An in-memory database uses `shared`. Close it (unless it is `shared`)
    when the database is closed.
    """
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if str(path) == ":memory:":
            return shared
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return BlobStore(path.with_suffix(".blobs"), fallback=shared)
    from courriel.storage.pgblobs import PgBlobStore  # PostgreSQL only; keeps asyncpg out of file stores

    return await PgBlobStore.open(url, fallback=shared)
