"""The real `courriel` console script, run as an administrator would, against a temporary organization."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".venv" / "bin" / "courriel"


def courriel(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script if there is one, else the same entry point as a module."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "courriel.admin.cli.main"]
    full_env = {k: v for k, v in os.environ.items() if k != "COURRIEL_CONFIG"}  # only what the test says
    full_env.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run(
        [*command, *args], input=stdin, capture_output=True, text=True, env=full_env, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("demo")
    result = courriel("demo", "init", str(target))
    assert result.returncode == 0, result.stderr
    assert "created the organization 'Courriel Demo'" in result.stdout
    yield target / "courriel.toml"


def test_demo_init_is_idempotent(demo: Path) -> None:
    again = courriel("demo", "init", str(demo.parent))
    assert again.returncode == 0
    assert "exists: the demo is set up already" in again.stdout


def test_ports_show_the_seed_port_and_the_bound_port(demo: Path) -> None:
    table = courriel("ports", "--config", str(demo))
    assert table.returncode == 0, table.stderr
    frontend = next(line for line in table.stdout.splitlines() if "Default Frontend demo" in line)
    assert frontend.split()[:2] == ["client-access", "frontend-transport"]
    assert " 25 " in frontend and "10025" in frontend
    rows = json.loads(courriel("--config", str(demo), "ports", "--json").stdout)
    assert {"connector": "Client Frontend demo", "port": 587, "bound_port": 10587}.items() <= next(
        r for r in rows if r["connector"] == "Client Frontend demo"
    ).items()


def test_mailbox_new_and_list(demo: Path) -> None:
    created = courriel(
        "mailbox",
        "new",
        "carol@example.test",
        "--name",
        "Carol",
        "--password-stdin",
        "--imap-enabled",
        "$false",
        "--config",
        str(demo),
        stdin="pa55word\n",
    )
    assert created.returncode == 0, created.stderr
    assert "created mailbox carol@example.test (Carol) in database DB01" in created.stdout
    listing = courriel("mailbox", "list", "--json", env={"COURRIEL_CONFIG": str(demo)})
    mailboxes = {m["primary_address"]: m for m in json.loads(listing.stdout)}
    assert {"alice@example.test", "bob@example.test", "carol@example.test"} <= set(mailboxes)
    assert mailboxes["carol@example.test"]["imap_enabled"] is False
    assert mailboxes["carol@example.test"]["has_password"] is True
    assert "password_hash" not in mailboxes["carol@example.test"]
    table = courriel("mailbox", "list", "--config", str(demo)).stdout.splitlines()
    assert table[0].split() == [
        "PrimarySmtpAddress",
        "DisplayName",
        "Database",
        "ImapEnabled",
        "PopEnabled",
        "Hidden",
    ]


def test_duplicate_address_is_a_clear_error(demo: Path) -> None:
    result = courriel("mailbox", "new", "ALICE@example.test", "--password", "x", "--config", str(demo))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "courriel: error: the address ALICE@example.test is already used by Alice Demo (mailbox)"
    )
    assert result.stdout == ""


def test_receive_connector_set_then_list(demo: Path) -> None:
    changed = courriel(
        "receive-connector",
        "set",
        "Client Frontend demo",
        "--max-message-size",
        "20MB",
        "--remote-ip-ranges",
        "10.0.0.0/8,192.0.2.7",
        "--auth-mechanism",
        "Tls,BasicAuth,BasicAuthRequireTLS",
        "--protocol-logging-level",
        "Verbose",
        "--config",
        str(demo),
    )
    assert changed.returncode == 0, changed.stderr
    listing = courriel("receive-connector", "list", "--config", str(demo))
    line = next(line for line in listing.stdout.splitlines() if "Client Frontend demo" in line)
    assert "10.0.0.0/8, 192.0.2.7" in line
    shown = json.loads(
        courriel(
            "receive-connector", "show", "demo\\Client Frontend demo", "--json", "--config", str(demo)
        ).stdout
    )
    assert shown["max_message_size"] == 20 * 1024 * 1024
    assert shown["protocol_logging_level"] == "Verbose"
    refused = courriel(
        "receive-connector",
        "set",
        "Client Frontend demo",
        "--auth-mechanism",
        "None,Tls",
        "--config",
        str(demo),
    )
    assert refused.returncode == 1
    assert "AuthMechanism None cannot be combined" in refused.stderr


def test_unknown_key_in_the_config_file(tmp_path: Path, demo: Path) -> None:
    bad = tmp_path / "courriel.toml"
    bad.write_text(demo.read_text().replace("[server]\n", '[server]\ncolour = "blue"\n'))
    result = courriel("mailbox", "list", "--config", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip() == f"courriel: error: {bad}: unknown key server.colour"


def test_usage_errors_exit_with_2(demo: Path) -> None:
    assert courriel("mailbox", "frobnicate").returncode == 2
    no_password = courriel("mailbox", "new", "dave@example.test", "--config", str(demo), stdin="")
    assert no_password.returncode == 2
    assert "--password or --password-stdin" in no_password.stderr


def test_init_writes_a_config_and_refuses_to_run_twice(tmp_path: Path) -> None:
    config = tmp_path / "srv" / "courriel.toml"
    args = (
        "init",
        "--config",
        str(config),
        "--organization",
        "Contoso",
        "--domain",
        "contoso.test",
        "--server",
        "EX01",
        "--listen",
        "127.0.0.1",
        "--port-offset",
        "30000",
    )
    first = courriel(*args)
    assert first.returncode == 0, first.stderr
    assert "created the mailbox database DB01, mounted on EX01" in first.stdout
    assert 'listen = ["127.0.0.1"]' in config.read_text()
    again = courriel(*args)
    assert again.returncode == 1
    assert "already holds the organization 'Contoso'; use --join" in again.stderr
