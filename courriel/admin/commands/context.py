"""What every admin command works on: this server's config and the organization directory it names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from courriel.config import ServerConfig, load_config
from courriel.org.directory import Directory


@dataclass(frozen=True, slots=True)
class Admin:
    config: ServerConfig
    directory: Directory


async def open_directory(config: ServerConfig) -> Directory:
    return await Directory.open(config.directory_url, config.data_dir)


@asynccontextmanager
async def open_admin(config_path: str | None) -> AsyncIterator[Admin]:
    """Load the server config (--config, $COURRIEL_CONFIG, ./courriel.toml) and open its directory."""
    config = load_config(config_path)
    directory = await open_directory(config)
    try:
        yield Admin(config, directory)
    finally:
        await directory.close()
