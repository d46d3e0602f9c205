"""Read and validate a server config file against the schema; errors name the bad key."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from courriel.config.schema import SETTINGS, ServerConfig, Setting
from courriel.core.errors import ConfigError
from courriel.core.ports import Role
from courriel.storage.engine import sqlite_path, sqlite_url

ENV_VAR = "COURRIEL_CONFIG"


def _check(setting: Setting, value: Any) -> Any:
    key = f"{setting.section}.{setting.name}"
    if setting.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, setting.type) or isinstance(value, bool) is not (setting.type is bool):
        raise ConfigError(f"{key}: expected {setting.type.__name__}, got {type(value).__name__}")
    if setting.minimum is not None and isinstance(value, int | float) and value < setting.minimum:
        raise ConfigError(f"{key}: {value} is below the minimum {setting.minimum}")
    if setting.maximum is not None and isinstance(value, int | float) and value > setting.maximum:
        raise ConfigError(f"{key}: {value} is above the maximum {setting.maximum}")
    if setting.choices is not None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item not in setting.choices:
                raise ConfigError(f"{key}: {item!r} is not one of {', '.join(setting.choices)}")
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of strings")
    return value


def parse_config(data: dict[str, Any], path: Path) -> ServerConfig:
    """Validate parsed TOML: unknown sections and keys are errors, like a typo in Postfix's main.cf is."""
    known: dict[str, dict[str, Setting]] = {}
    for s in SETTINGS:
        known.setdefault(s.section, {})[s.name] = s
    values: dict[str, dict[str, Any]] = {sec: {n: s.default for n, s in names.items()} for sec, names in known.items()}
    for section, table in data.items():
        if section not in known:
            raise ConfigError(f"{path}: unknown section [{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        for name, value in table.items():
            if name not in known[section]:
                raise ConfigError(f"{path}: unknown key {section}.{name}")
            values[section][name] = _check(known[section][name], value)
    srv = values["server"]
    if not srv["name"]:
        raise ConfigError(f"{path}: server.name is required")
    roles = frozenset(Role(r) for r in srv["roles"])
    if not roles:
        raise ConfigError(f"{path}: server.roles must name at least one role")
    if Role.EDGE in roles and len(roles) > 1:
        raise ConfigError(f"{path}: server.roles: the edge role always runs alone")
    base = path.parent
    data_dir = (base / srv["data_dir"]).resolve()
    url = values["directory"]["url"]
    directory_file = sqlite_path(url, data_dir)
    if directory_file is not None:
        url = sqlite_url(directory_file)
    elif not (url.startswith("sqlite:") or url.startswith("postgresql")):
        raise ConfigError(f"{path}: directory.url must be sqlite:///… or postgresql://…")
    log_file = values["log"]["file"]
    return ServerConfig(
        path=path.resolve(),
        name=srv["name"],
        fqdn=(srv["fqdn"] or f"{srv['name']}.localdomain").lower(),
        roles=roles,
        site=srv["site"],
        listen=tuple(srv["listen"]),
        port_offset=srv["port_offset"],
        data_dir=data_dir,
        workers=srv["workers"],
        directory_url=url,
        tls_certificate=data_dir / values["tls"]["certificate"],
        tls_key=data_dir / values["tls"]["key"],
        dns_nameservers=tuple(values["dns"]["nameservers"]),
        dns_timeout=values["dns"]["timeout"],
        log_level=values["log"]["level"],
        log_file=(data_dir / log_file) if log_file else None,
        raw=values,
    )


def config_path(explicit: str | None) -> Path:
    """--config wins, then $COURRIEL_CONFIG, then ./courriel.toml."""
    return Path(explicit or os.environ.get(ENV_VAR) or "courriel.toml")


def load_config(explicit: str | None = None) -> ServerConfig:
    path = config_path(explicit)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no server config at {path} (use --config PATH or {ENV_VAR})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(data, path)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def render_config(sections: dict[str, dict[str, Any]]) -> str:
    """TOML text for a new server config (what `courriel init` writes), with each setting's help."""
    helps = {(s.section, s.name): s.help for s in SETTINGS}
    lines: list[str] = []
    for section, table in sections.items():
        lines.append(f"[{section}]")
        for name, value in table.items():
            lines.append(f"# {helps[(section, name)]}")
            lines.append(f"{name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)
