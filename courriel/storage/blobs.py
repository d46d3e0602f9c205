"""Content-addressed message bytes, written once and shared by the transport queue and the mailbox store.

A blob's name is the SHA-256 of its bytes, so the queue and every mailbox that holds a copy of a
message point at one file (DESIGN.md §3). Bodies stay out of SQL rows: both drivers materialise
BLOBs whole (python-ecosystem.md §6). A blob is durable before `put` returns: written to a
temporary file, fsync'ed, renamed into place, and its directory fsync'ed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class BlobRef:
    digest: str  # hex SHA-256
    size: int


IO_THREADS = 16  # concurrent messages' fsyncs overlap instead of queueing behind each other


class BlobStore:
    """Blobs under `root/ab/cd/abcd…`; safe for several processes (rename is atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = root
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
        return self.path(digest).read_bytes()

    async def get(self, digest: str) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self._io, self.get_sync, digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def remove(self, digest: str) -> None:
        """Delete a blob no store references any more (the caller checked)."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass

    def digests(self) -> list[str]:
        """Every stored digest (for garbage collection and checks)."""
        return [p.name for p in self.root.glob("??/??/*") if p.is_file()]
