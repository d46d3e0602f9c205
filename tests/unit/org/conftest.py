"""Directory fixtures on both engines (the `db_url` fixture is parametrized over SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from courriel.org.directory import Directory


@pytest.fixture
async def directory(db_url: str) -> AsyncIterator[Directory]:
    d = await Directory.open(db_url)
    try:
        yield d
    finally:
        await d.close()


@pytest.fixture
async def org(directory: Directory) -> Directory:
    """An organization with one accepted domain, one all-in-one server `EX01` and database DB01."""
    await directory.init_organization("Contoso")
    await directory.add_accepted_domain("example.test")
    await directory.register_server("EX01", "ex01.example.test", ["client-access", "mailbox"])
    await directory.new_database("DB01", "sqlite:///databases/DB01.db", "EX01")
    return directory
