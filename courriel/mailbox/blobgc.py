"""Blob garbage collection on the mailbox side: which bodies a database still needs.

Expunge and MOVE leave bodies in place (mailbox/expunge.py): a body goes only when no message of
its database references it (`digests_in_use`) and it is older than the grace period, which
covers a delivery that has linked a body but not yet committed its row (storage/blobs.py,
`sweep_unreferenced`). Databases created before per-database stores also read bodies from the
server's shared store: `fallback_references` names those, so that the queue-side sweep
(transport/queue/gc.py) keeps them.

Uses only the public face of a mailbox database (`Database` below: name, blobs, digests_in_use).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

from courriel.mailbox.store import MailboxDatabase
from courriel.storage.blobs import BlobStore, Sweep, open_database_blobs, sweep_unreferenced
from courriel.storage.engine import IN_MEMORY, sqlite_path


class Database(Protocol):
    """What blob collection needs of a mailbox database (MailboxDatabase has it)."""

    @property
    def name(self) -> str: ...

    @property
    def blobs(self) -> BlobStore: ...

    async def digests_in_use(self) -> set[str]: ...


def label(db: Database) -> str:
    return f"database {db.name}"


async def sweep_database(db: Database, shared: BlobStore, before: float, *, dry_run: bool = False) -> Sweep:
    """Delete the bodies in the database's own store that none of its messages references."""
    if db.blobs.same_store(shared):
        # An in-memory database writes to the shared store: the queue-side sweep covers it.
        return Sweep(label(db), skipped="its bodies are in the shared store")
    return await sweep_unreferenced(db.blobs, label(db), db.digests_in_use, before, dry_run=dry_run)


async def fallback_references(databases: Iterable[Database], shared: BlobStore) -> set[str]:
    """The digests these databases reference and read through `shared` (not held in their own store)."""
    found: set[str] = set()
    for db in databases:
        used = await db.digests_in_use()
        if db.blobs.same_store(shared):
            found |= used
        else:
            found |= used - await db.blobs.held(used)
    return found


def database_exists(url: str, data_dir: Path) -> bool:
    """False for a SQLite database whose file was never created (it references nothing)."""
    path = sqlite_path(url, data_dir)
    return path is None or sqlite_path(url) == IN_MEMORY or path.exists()


@asynccontextmanager
async def opened(name: str, url: str, data_dir: Path, shared: BlobStore) -> AsyncIterator[MailboxDatabase]:
    """A database this process does not have open (dismounted, or read from `courriel`), for a sweep."""
    blobs = await open_database_blobs(url, data_dir, shared)
    try:
        db = await MailboxDatabase.open(name, url, data_dir, blobs)
        try:
            yield db
        finally:
            await db.close()
    finally:
        if blobs is not shared:
            await blobs.close()
