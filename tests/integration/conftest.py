"""Integration fixtures: a running Courriel server per engine (SQLite, then PostgreSQL), per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.mailserver import MailServer, engine_databases, organization_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def mailserver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    """An all-in-one server with a fresh organization; directory and mailboxes on the given engine."""
    with engine_databases(request.param) as urls:
        server = organization_server(tmp_path_factory.mktemp(f"org-{request.param}"), urls)
        server.start()
        try:
            yield server
        finally:
            server.stop()
