"""Fixtures for the mailbox store tests: a MailboxDatabase on each engine (the db_url fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from courriel.mailbox.store import MailboxDatabase
from courriel.storage.blobs import BlobStore


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
async def store(db_url: str, tmp_path: Path, blobs: BlobStore) -> AsyncIterator[MailboxDatabase]:
    db = await MailboxDatabase.open("DB01", db_url, tmp_path, blobs, poll_interval=0.05)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def lazy_store(db_url: str, tmp_path: Path, blobs: BlobStore) -> AsyncIterator[MailboxDatabase]:
    """A store that leaves the IMAP analysis to first use (as databases filled before it was made
    at delivery are)."""
    db = await MailboxDatabase.open("DB01", db_url, tmp_path, blobs, poll_interval=0.05, analyser=None)
    try:
        yield db
    finally:
        await db.close()
