"""`sqlite:///path` database URLs, read one way wherever a database is named.

The config file, the directory and the admin commands write a SQLite database as
`sqlite:///databases/DB01.db`, relative to a server's data directory, or `sqlite:////abs/DB01.db`;
storage/engine.py's `sqlite_path` is the one reading of that form (the engines, the config
loader, blob collection and the admin commands all use it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from courriel.config.loader import parse_config
from courriel.core.errors import ConfigError
from courriel.mailbox.blobgc import database_exists
from courriel.storage.engine import IN_MEMORY, async_url, sqlite_path, sqlite_url

DATA = Path("/srv/courriel/data")


def test_a_relative_path_is_a_file_in_the_data_directory() -> None:
    assert sqlite_path("sqlite:///databases/DB01.db", DATA) == DATA / "databases" / "DB01.db"
    assert sqlite_path("sqlite:///databases/DB01.db") == Path("databases/DB01.db")  # as written


def test_an_absolute_path_stays_as_it_is() -> None:
    assert sqlite_path("sqlite:////var/db/DB01.db", DATA) == Path("/var/db/DB01.db")
    assert sqlite_path("sqlite:////var/db/DB01.db") == Path("/var/db/DB01.db")


def test_other_engines_and_forms_have_no_file() -> None:
    for url in (
        "postgresql://courriel@db.example.test/mail",
        "postgres://db/mail",
        "postgresql+asyncpg://db/mail",
        "sqlite+aiosqlite:///databases/DB01.db",
    ):
        assert sqlite_path(url, DATA) is None, url


def test_in_memory_is_named_as_written() -> None:
    assert sqlite_path("sqlite:///:memory:") == IN_MEMORY


def test_the_url_of_a_path_reads_back_to_it() -> None:
    for url in ("sqlite:///databases/DB01.db", "sqlite:////var/db/DB01.db"):
        path = sqlite_path(url)
        assert path is not None and sqlite_url(path) == url


def test_the_async_url_opens_the_file_in_the_data_directory(tmp_path: Path) -> None:
    assert (
        async_url("sqlite:///databases/DB01.db", tmp_path)
        == f"sqlite+aiosqlite:///{tmp_path}/databases/DB01.db"
    )
    assert (tmp_path / "databases").is_dir()  # made for SQLite to create the file in
    assert async_url("postgresql://db/mail") == "postgresql+asyncpg://db/mail"
    with pytest.raises(ValueError, match="unsupported database URL"):
        async_url("mysql://db/mail")


def test_the_config_names_the_directory_by_an_absolute_path(tmp_path: Path) -> None:
    def directory_url(url: str) -> str:
        data = {"server": {"name": "MBX1", "data_dir": "data"}, "directory": {"url": url}}
        return parse_config(data, tmp_path / "courriel.toml").directory_url

    data_dir = (tmp_path / "data").resolve()
    assert directory_url("sqlite:///directory.db") == f"sqlite:///{data_dir}/directory.db"
    assert directory_url("sqlite:////var/db/directory.db") == "sqlite:////var/db/directory.db"
    assert directory_url("postgresql://db/org") == "postgresql://db/org"
    with pytest.raises(ConfigError, match=r"directory\.url must be sqlite:///… or postgresql://…"):
        directory_url("mysql://db/org")


def test_a_database_exists_unless_its_file_was_never_created(tmp_path: Path) -> None:
    (tmp_path / "databases").mkdir()
    (tmp_path / "databases" / "DB01.db").touch()
    assert database_exists("sqlite:///databases/DB01.db", tmp_path)
    assert not database_exists("sqlite:///databases/DB02.db", tmp_path)
    assert database_exists(f"sqlite:///{tmp_path}/databases/DB01.db", Path("/nonexistent"))
    assert not database_exists(f"sqlite:///{tmp_path}/databases/DB02.db", tmp_path)
    assert database_exists("sqlite:///:memory:", tmp_path)
    assert database_exists("postgresql://db/mail", tmp_path)
