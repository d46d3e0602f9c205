"""Every server setting in one table: name, type, default, bounds and help (as Postfix's mail_params.h).

A server config holds only what belongs to one machine: its identity, roles, where it listens, where
its data and directory are. Connectors, recipients and limits belong to the organization directory.
Unknown keys are errors; `courriel config reference` prints this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from courriel.core.ports import Role


@dataclass(frozen=True, slots=True)
class Setting:
    section: str
    name: str
    type: type
    default: Any
    help: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("server", "name", str, None, "Server name as the directory knows it (connector names use it); required"),
    Setting("server", "fqdn", str, None, "Fully qualified name: banners, EHLO, Received headers, certificate; default name.localdomain"),
    Setting("server", "roles", list, ["client-access", "mailbox"], "Roles this server runs", choices=tuple(r.value for r in Role)),
    Setting("server", "site", str, "Default-First-Site-Name", "Directory site the server belongs to"),
    Setting("server", "listen", list, ["0.0.0.0"], "Local addresses every service binds (connector bindings may narrow them)"),
    Setting("server", "port_offset", int, 0, "Added to every port (10000 → 10025, 10587 …) to run without root", 0, 60000),
    Setting("server", "data_dir", str, "data", "Queue, blobs, mailbox databases, logs; relative to the config file"),
    Setting("server", "workers", int, 0, "Worker processes sharing the listening sockets; 0 = one per CPU core", 0, 64),
    Setting("directory", "url", str, "sqlite:///directory.db", "Organization directory: sqlite:///path (relative to data_dir) or postgresql://…"),
    Setting("tls", "certificate", str, "tls/server.crt", "PEM certificate; a self-signed one is made on first start if missing"),
    Setting("tls", "key", str, "tls/server.key", "PEM private key"),
    Setting("dns", "nameservers", list, [], "Resolvers for next-hop lookups (\"ip\" or \"ip:port\"); empty = the system's"),
    Setting("dns", "timeout", float, 5.0, "Seconds per DNS query"),
    Setting("log", "level", str, "info", "Log level", choices=("debug", "info", "warning", "error")),
    Setting("log", "file", str, "", "Log file (relative to data_dir); empty = standard error"),
)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """A loaded, validated server config; paths are absolute."""

    path: Path
    name: str
    fqdn: str
    roles: frozenset[Role]
    site: str
    listen: tuple[str, ...]
    port_offset: int
    data_dir: Path
    workers: int
    directory_url: str
    tls_certificate: Path
    tls_key: Path
    dns_nameservers: tuple[str, ...]
    dns_timeout: float
    log_level: str
    log_file: Path | None
    raw: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)

    def port(self, port: int) -> int:
        return port + self.port_offset

    @property
    def addresses(self) -> tuple[str, ...]:
        """Where other servers reach this one: its listen addresses; a wildcard names none."""
        return tuple(a for a in self.listen if a not in ("0.0.0.0", "::"))
