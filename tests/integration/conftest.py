"""Integration fixtures: a running Courriel server per engine (SQLite, then PostgreSQL), per module."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.conftest import create_pg_database, drop_pg_database, postgres_available, require
from tests.integration.mailserver import MailServer, create_organization, free_offset


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def mailserver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    """An all-in-one server with a fresh organization; directory and mailboxes on the given engine."""
    urls: list[str] = []
    if request.param == "postgresql":
        require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
        urls = [asyncio.run(create_pg_database()), asyncio.run(create_pg_database())]
    root = tmp_path_factory.mktemp(f"org-{request.param}")
    offset = free_offset()
    config_path = asyncio.run(
        create_organization(
            root,
            directory_url=urls[0] if urls else None,
            mailbox_db_url=urls[1] if urls else None,
            offset=offset,
        )
    )
    server = MailServer(config_path, offset)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        for url in urls:
            asyncio.run(drop_pg_database(url))
