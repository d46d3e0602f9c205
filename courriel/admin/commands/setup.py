"""Setting a server up: `courriel init` (a new organization, or `--join` an existing one) and `courriel demo init`.

Setup writes the server config, then creates what Exchange setup creates: the organization, its
first accepted domain, the server with the seed's default receive connectors for its roles, and
on a Mailbox server the first mailbox database, mounted. The config file is written last, once
the directory holds everything, so an existing config always stands for a finished setup.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from courriel.admin.commands.context import open_directory
from courriel.admin.commands.databases import default_database_url
from courriel.config import ServerConfig, load_config, render_config
from courriel.config.loader import parse_config
from courriel.core.errors import ConfigError, Conflict, NotFound, PermanentError
from courriel.core.ports import Role
from courriel.org.directory import Directory
from courriel.org.domains import normalize_domain
from courriel.org.store import check_name
from courriel.storage.engine import database_name

DEFAULT_DATABASE = "DB01"

# What `make serve` runs: an all-in-one server on loopback, ports shifted by 10000 (no root needed).
DEMO_ORGANIZATION = "Courriel Demo"
DEMO_DOMAIN = "example.test"
DEMO_SERVER = "demo"
DEMO_FQDN = "demo.example.test"
DEMO_LISTEN = ("127.0.0.1",)
DEMO_PORT_OFFSET = 10000
DEMO_PASSWORD = "courriel-demo"
DEMO_MAILBOXES = (("alice@example.test", "Alice Demo"), ("bob@example.test", "Bob Demo"))
DEMO_GROUP = ("team@example.test", "Team")

# ServerSetup field → (section, key) in the server config file.
_CONFIG_KEYS = {
    "server": ("server", "name"),
    "fqdn": ("server", "fqdn"),
    "roles": ("server", "roles"),
    "site": ("server", "site"),
    "listen": ("server", "listen"),
    "port_offset": ("server", "port_offset"),
    "data_dir": ("server", "data_dir"),
    "directory_url": ("directory", "url"),
}


@dataclass(frozen=True, slots=True)
class ServerSetup:
    """The server-config part of `courriel init`; None leaves the file's value or the schema default."""

    config_path: Path
    server: str | None = None
    fqdn: str | None = None
    roles: tuple[str, ...] | None = None
    site: str | None = None
    listen: tuple[str, ...] | None = None
    port_offset: int | None = None
    data_dir: str | None = None
    directory_url: str | None = None


@dataclass(slots=True)
class SetupReport:
    config: ServerConfig
    config_written: bool
    notes: list[str] = field(default_factory=list)


def _given(setup: ServerSetup) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for attr, key in _CONFIG_KEYS.items():
        value = getattr(setup, attr)
        if value is not None:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def prepare_config(setup: ServerSetup) -> tuple[ServerConfig, str | None]:
    """The server config, and the text to write if the file does not exist yet (else None).

    An existing file wins, but an option that contradicts it is an error rather than ignored.
    """
    path = setup.config_path
    given = _given(setup)
    if path.exists():
        config = load_config(str(path))
        for (section, key), value in given.items():
            if config.raw[section][key] != value:
                raise ConfigError(
                    f"{path} exists and sets {section}.{key} = {config.raw[section][key]!r}, not {value!r};"
                    " edit the file or leave the option out"
                )
        return config, None
    if ("server", "name") not in given:
        raise ConfigError(f"no server config at {path}: --server NAME is needed to write one")
    sections: dict[str, dict[str, Any]] = {}
    for (section, key), value in given.items():
        sections.setdefault(section, {})[key] = value
    text = render_config(sections)
    return parse_config(tomllib.loads(text), path), text


def write_config(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o640)  # it names the directory's URL, which may carry a password
    tmp.replace(path)


async def setup_directory(
    directory: Directory,
    config: ServerConfig,
    *,
    organization: str | None,
    domain: str | None,
    database: str | None,
    join: bool,
) -> list[str]:
    """The directory part of `courriel init`; returns what was done, for the operator."""
    notes = []
    existing = await directory.organization_name()
    where = database_name(config.directory_url)
    if join:
        if existing is None:
            raise NotFound(
                f"the directory {where} holds no organization to join: run `courriel init` without --join"
            )
    else:
        if organization is None or domain is None:
            raise PermanentError(
                "--organization and --domain are required (or --join an existing organization)"
            )
        if existing is not None:
            raise Conflict(
                f"the directory {where} already holds the organization {existing!r};"
                " use --join to add this server to it"
            )
        # Check every name first, so that a typo does not leave a half-made organization behind.
        organization = check_name(organization, "organization")
        domain = normalize_domain(domain)
    normalize_domain(config.fqdn)
    server = await directory.register_server(
        config.name,
        config.fqdn,
        config.roles,
        config.site,
        config.addresses,
        config.port_offset,
        listen=config.listen,
    )
    if join:
        notes.append(f"joined the organization {existing!r}")
    else:
        assert organization is not None and domain is not None
        await directory.init_organization(organization)
        await directory.add_accepted_domain(domain)
        notes.append(f"created the organization {organization!r} with the accepted domain {domain}")
    connectors = await directory.list_receive_connectors(server.name)
    notes.append(
        f"registered server {server.name} ({', '.join(server.roles)}) with receive connectors: "
        + ", ".join(c.name for c in connectors)
    )
    if Role.MAILBOX in config.roles and (not join or database is not None):
        name = database or DEFAULT_DATABASE
        db = await directory.new_database(name, default_database_url(name), config.name)
        notes.append(f"created the mailbox database {db.name}, mounted on {config.name}")
    return notes


async def init_server(
    setup: ServerSetup,
    *,
    organization: str | None,
    domain: str | None,
    database: str | None = None,
    join: bool = False,
) -> SetupReport:
    """`courriel init`."""
    config, text = prepare_config(setup)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    directory = await open_directory(config)
    try:
        notes = await setup_directory(
            directory, config, organization=organization, domain=domain, database=database, join=join
        )
    finally:
        await directory.close()
    if text is not None:
        write_config(config.path, text)
        notes.insert(0, f"wrote the server config {config.path}")
    return SetupReport(config, text is not None, notes)


async def demo_init(target: Path) -> SetupReport | None:
    """`courriel demo init DIR`: a ready-to-use organization; None if DIR is set up already."""
    path = target / "courriel.toml"
    if path.exists():
        return None
    setup = ServerSetup(
        config_path=path,
        server=DEMO_SERVER,
        fqdn=DEMO_FQDN,
        roles=(Role.CLIENT_ACCESS.value, Role.MAILBOX.value),
        listen=DEMO_LISTEN,
        port_offset=DEMO_PORT_OFFSET,
    )
    config, text = prepare_config(setup)
    assert text is not None
    config.data_dir.mkdir(parents=True, exist_ok=True)
    directory = await open_directory(config)
    try:
        notes = await setup_directory(
            directory, config, organization=DEMO_ORGANIZATION, domain=DEMO_DOMAIN, database=None, join=False
        )
        for address, name in DEMO_MAILBOXES:
            await directory.new_mailbox(address, name, DEMO_PASSWORD)
        await directory.new_group(DEMO_GROUP[0], DEMO_GROUP[1], [a for a, _ in DEMO_MAILBOXES])
        for proto in ("imap", "pop"):
            await directory.set_protocol_settings(proto, enabled=True)
    finally:
        await directory.close()
    notes.append(
        f"mailboxes {', '.join(a for a, _ in DEMO_MAILBOXES)} (password {DEMO_PASSWORD!r}),"
        f" group {DEMO_GROUP[0]}; IMAP4 and POP3 enabled"
    )
    write_config(path, text)
    notes.insert(0, f"wrote the server config {path}")
    return SetupReport(config, True, notes)
