"""The `courriel` nouns in process (`main(argv)`), against a demo organization: output, exit codes, effects."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from courriel.admin.cli.main import main
from courriel.admin.commands.setup import demo_init
from courriel.transport.tracking import TrackingLog


@pytest.fixture
def config(tmp_path: Path) -> str:
    asyncio.run(demo_init(tmp_path / "demo"))
    return str(tmp_path / "demo" / "courriel.toml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_domains_groups_and_contacts(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(capsys, "domain", "add", "example.org", "--domain-type", "InternalRelay", "--config", config)[0]
        == 0
    )
    code, out, _ = run(capsys, "domain", "list", "--json", "--config", config)
    assert {"name": "example.org", "domain_type": "InternalRelay", "default": False} in json.loads(out)
    code, _, err = run(capsys, "domain", "remove", "example.test", "--config", config)
    assert code == 1 and "still used by" in err

    assert (
        run(
            capsys,
            "contact",
            "new",
            "partner@partner.example",
            "--external-address",
            "p@partner.example",
            "--config",
            config,
        )[0]
        == 0
    )
    assert (
        run(
            capsys, "group", "add-member", "team@example.test", "partner@partner.example", "--config", config
        )[0]
        == 0
    )
    code, out, _ = run(capsys, "group", "members", "team@example.test", "--config", config)
    assert [line.split()[0] for line in out.splitlines()[2:]] == [
        "alice@example.test",
        "bob@example.test",
        "partner@partner.example",
    ]
    code, out, _ = run(capsys, "group", "list", "--config", config)
    assert out.splitlines()[2].split() == ["team@example.test", "Team", "3"]
    code, _, err = run(
        capsys, "group", "add-member", "team@example.test", "team@example.test", "--config", config
    )
    assert code == 1 and "cannot be a member of itself" in err
    code, _, err = run(capsys, "mailbox", "remove", "team@example.test", "--config", config)
    assert code == 1 and "is a group, not a mailbox" in err
    assert run(capsys, "group", "remove", "team@example.test", "--config", config)[0] == 0


def test_mailbox_set_and_show(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        "mailbox",
        "set",
        "alice@example.test",
        "--add-address",
        "a@example.test",
        "--primary-address",
        "a@example.test",
        "--prohibit-send-quota",
        "2GB",
        "--pop-enabled",
        "false",
        "--config",
        config,
    )
    assert code == 0, err
    code, out, _ = run(capsys, "mailbox", "show", "A@EXAMPLE.TEST", "--config", config)
    pairs = (line.split(" : ", 1) for line in out.splitlines() if " : " in line)
    shown = {key.strip(): value.strip() for key, value in pairs}
    assert shown["PrimarySmtpAddress"] == "a@example.test"
    assert shown["EmailAddresses"] == "a@example.test, alice@example.test"
    assert shown["ProhibitSendQuota"] == "2 GB (2,147,483,648 bytes)"
    assert shown["PopEnabled"] == "False"
    assert "argon2" not in out
    code, _, err = run(
        capsys, "mailbox", "set", "a@example.test", "--prohibit-send-quota", "lots", "--config", config
    )
    assert code == 1 and "'lots' is not a size" in err


def test_connectors_databases_and_settings(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        "receive-connector",
        "new",
        "Partners",
        "--usage",
        "Partner",
        "--bindings",
        "127.0.0.1:2526",
        "--remote-ip-ranges",
        "198.51.100.0/24",
        "--require-tls",
        "$true",
        "--config",
        config,
    )
    assert code == 0, err
    code, out, _ = run(capsys, "ports", "--json", "--config", config)
    partners = next(r for r in json.loads(out) if r["connector"] == "Partners")
    assert (partners["service"], partners["port"], partners["bound_port"]) == (
        "frontend-transport",
        2526,
        12526,
    )
    assert run(capsys, "receive-connector", "remove", "demo\\Partners", "--config", config)[0] == 0

    code, _, err = run(
        capsys,
        "send-connector",
        "new",
        "Internet",
        "--address-spaces",
        "*",
        "--dns-routing-enabled",
        "true",
        "--smart-hosts",
        "relay.example.net",
        "--config",
        config,
    )
    assert code == 1 and "SmartHosts need DNSRoutingEnabled false" in err
    # Smart hosts given without --dns-routing-enabled turn MX routing off, as the EAC does;
    # the singular spellings of issue #4's example work too.
    code, _, err = run(
        capsys, "send-connector", "new", "Partner", "--address-space", "partner.example",
        "--smart-host", "192.0.2.7", "--port", "2526", "--config", config,
    )
    assert code == 0, err
    code, out, _ = run(capsys, "send-connector", "list", "--json", "--config", config)
    partner = next(c for c in json.loads(out) if c["name"] == "Partner")
    assert (partner["dns_routing_enabled"], partner["smart_hosts"], partner["port"]) == (False, ["192.0.2.7"], 2526)
    assert run(capsys, "send-connector", "remove", "Partner", "--config", config)[0] == 0
    code, _, err = run(
        capsys,
        "send-connector",
        "new",
        "Internet",
        "--address-spaces",
        "SMTP:*;10",
        "--dns-routing-enabled",
        "false",
        "--smart-hosts",
        "relay.example.net",
        "--config",
        config,
    )
    assert code == 0, err
    code, out, _ = run(capsys, "send-connector", "list", "--config", config)
    assert out.splitlines()[2].split()[:3] == ["Internet", "SMTP:*;10", "False"]

    assert run(capsys, "database", "new", "DB02", "--config", config)[0] == 0
    assert run(capsys, "database", "dismount", "DB02", "--config", config)[1] == "DB02: dismounted\n"
    code, out, _ = run(capsys, "database", "list", "--json", "--config", config)
    assert [(d["name"], d["mounted"]) for d in json.loads(out)] == [("DB01", True), ("DB02", False)]

    code, out, _ = run(
        capsys,
        "pop-settings",
        "set",
        "--enabled",
        "false",
        "--login-type",
        "SecureLogin",
        "--external-connection-settings",
        "mail.example.test:995:SSL",
        "--json",
        "--config",
        config,
    )
    assert json.loads(out)["external_connection_settings"] == ["mail.example.test:995:SSL"]
    code, out, _ = run(capsys, "ports", "--config", config)
    assert all("Disabled" in line for line in out.splitlines() if "pop3" in line)
    code, out, _ = run(
        capsys, "transport-config", "set", "--message-expiration-timeout", "1.00:00:00", "--config", config
    )
    assert "MessageExpirationTimeout" in out and "1.00:00:00" in out
    code, _, err = run(capsys, "imap-settings", "set", "--max-command-size", "100", "--config", config)
    assert code == 1 and "MaxCommandSize must be between 1024 and 16384" in err


def test_tracking_search_and_queues(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    log = TrackingLog(Path(config).parent / "data" / "logs" / "tracking", "demo")
    log.write(
        "RECEIVE",
        source="SMTP",
        internal_message_id="01Q",
        message_id="<m1@demo>",
        sender="a@x.test",
        recipients=["alice@example.test", "bob@example.test"],
        connector="Default Frontend demo",
    )
    log.write(
        "DELIVER",
        source="STOREDRIVER",
        internal_message_id="01Q",
        message_id="<m1@demo>",
        sender="a@x.test",
        recipients=["alice@example.test"],
    )
    code, out, _ = run(capsys, "tracking", "search", "--event-id", "receive", "--config", config)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["Timestamp", "EventId", "Source"]
    assert len(lines) == 3 and "alice@example.test, bob@example.test" in lines[2]
    code, out, _ = run(
        capsys, "tracking", "search", "--message-id", "m1@demo", "--json", "--limit", "1", "--config", config
    )
    assert [e["event_id"] for e in json.loads(out)] == ["RECEIVE"]
    code, out, _ = run(capsys, "queue", "list", "--json", "--config", config)
    assert code == 0 and isinstance(json.loads(out), list)
