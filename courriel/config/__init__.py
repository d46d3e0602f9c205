"""The server config file (TOML): its schema and its loader. Organization settings live in the directory, not here."""

from courriel.config.loader import load_config, render_config
from courriel.config.schema import ServerConfig

__all__ = ["ServerConfig", "load_config", "render_config"]
