"""`courriel ports --organization`, run as an administrator would, on an organization of three servers.

One Client Access server (127.0.0.10) and two Mailbox servers (127.0.0.11; 127.0.0.12 with a port
offset) share one directory on each engine; a send connector has FrontEndProxyEnabled and IMAP4 is
enabled. The flow table and the nftables ruleset come from that live directory; `nft -c` checks
the ruleset when nft and root are there (always under CI: .ci/run installs nftables).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require, require_tool
from tests.integration.test_cli import courriel

OFFSET = 10000  # MBX2's port_offset: nothing binds here, the table only has to apply it


def ok(*args: str) -> str:
    result = courriel(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def organization(db_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Config paths of CAS1, MBX1 and MBX2, registered in one directory."""
    configs = {name: str(tmp_path / name / "courriel.toml") for name in ("CAS1", "MBX1", "MBX2")}
    common = ["--directory-url", db_url, "--data-dir", "data"]
    ok("init", "--config", configs["CAS1"], "--organization", "Contoso", "--domain", "example.test",
       "--server", "CAS1", "--roles", "client-access", "--listen", "127.0.0.10", *common)  # fmt: skip
    ok("init", "--config", configs["MBX1"], "--join", "--server", "MBX1", "--roles", "mailbox",
       "--listen", "127.0.0.11", "--database", "DB01", *common)  # fmt: skip
    ok("init", "--config", configs["MBX2"], "--join", "--server", "MBX2", "--roles", "mailbox",
       "--listen", "127.0.0.12", "--port-offset", str(OFFSET), "--database", "DB02", *common)  # fmt: skip
    ok("send-connector", "new", "Via CAS", "--address-spaces", "*", "--front-end-proxy-enabled", "true",
       "--config", configs["MBX1"])  # fmt: skip
    ok("imap-settings", "set", "--enabled", "true", "--config", configs["CAS1"])
    yield configs


def flows_of(config: str, *extra: str) -> set[tuple[str, int, str, str, str | None]]:
    rows = json.loads(ok("ports", "--organization", "--json", "--config", config, *extra))
    return {(r["protocol"], r["bound_port"], r["source"], r["destination"], r["connector"]) for r in rows}


def test_the_flow_table_follows_the_directory(organization: dict[str, str]) -> None:
    rows = json.loads(ok("ports", "--organization", "--json", "--config", organization["MBX2"]))
    flows = {(r["protocol"], r["bound_port"], r["source"], r["destination"], r["connector"]) for r in rows}
    clients = {
        (r["port"], r["connector"] or r["service"]) for r in rows if r["section"] == "Clients and services"
    }
    assert clients == {
        (443, "http-proxy"),
        (80, "http-proxy"),
        (143, "imap-proxy"),
        (993, "imap-proxy"),
        (587, "Client Frontend CAS1"),
    }  # POP3 stays disabled: no 110/995
    assert {
        ("tcp", 25, "Internet", "CAS1", "Default Frontend CAS1"),
        ("tcp", 25, "CAS1", "MBX1", "Default MBX1"),
        ("tcp", 25 + OFFSET, "CAS1", "MBX2", "Default MBX2"),
        ("tcp", 465 + OFFSET, "CAS1", "MBX2", "Client Proxy MBX2"),
        ("tcp", 25 + OFFSET, "MBX1", "MBX2", "Default MBX2"),
        ("tcp", 25, "MBX2", "MBX1", "Default MBX1"),
        ("tcp", 717, "MBX1", "CAS1", "Outbound Proxy Frontend CAS1"),
        ("tcp", 717, "MBX2", "CAS1", "Outbound Proxy Frontend CAS1"),
        ("tcp", 25, "CAS1", "Internet", "Via CAS"),
        ("tcp", 1143 + OFFSET, "CAS1", "MBX2", None),
        ("udp", 53, "MBX2", "DNS", None),
    } <= flows
    assert not any(f[2].startswith("MBX") and f[3] == "Internet" for f in flows)  # proxied, never direct
    assert not any(r["section"] != "Clients and services" and r["bound_port"] in (1110, 1995) for r in rows)
    mbx2 = next(r for r in rows if r["destination"] == "MBX2")
    assert mbx2["destination_addresses"] == ["127.0.0.12"]

    # A directory change shows at once: the connector no longer goes through Client Access.
    ok(
        "send-connector",
        "set",
        "Via CAS",
        "--front-end-proxy-enabled",
        "false",
        "--config",
        organization["CAS1"],
    )
    changed = flows_of(organization["CAS1"])
    assert ("tcp", 25, "MBX1", "Internet", "Via CAS") in changed
    assert not any(f[4] == "Outbound Proxy Frontend CAS1" for f in changed)

    table = ok("ports", "--organization", "--config", organization["CAS1"]).splitlines()
    assert table[0] == "Clients and services" and "Mail flow without an Edge server" in table
    assert "Mail flow with an Edge Transport server" not in table
    relay = next(line for line in table if "Default MBX2" in line and line.startswith("Inbound"))
    assert "25/TCP" in relay and str(25 + OFFSET) in relay and "CAS1 (127.0.0.10)" in relay

    only = flows_of(organization["CAS1"], "--server", "mbx1")
    assert only and all("MBX1" in (f[2], f[3]) for f in only)


def test_the_nftables_ruleset_allows_exactly_the_flows(organization: dict[str, str], tmp_path: Path) -> None:
    text = ok("ports", "--organization", "--format", "nftables", "--config", organization["CAS1"])
    lines = [line.strip() for line in text.splitlines()]
    assert "table inet courriel {" in lines
    assert "type filter hook input priority 0; policy accept;" in lines
    assert any(
        line.startswith("ip saddr 127.0.0.11 ip daddr 127.0.0.10 tcp dport 717 accept comment")
        and "Outbound Proxy Frontend CAS1" in line
        for line in lines
    )
    assert any(line.startswith("ip daddr 127.0.0.10 tcp dport 143 accept") for line in lines)
    assert not any(line.startswith("ip daddr 127.0.0.10 tcp dport 110 accept") for line in lines)
    assert any(
        line.startswith(f"ip saddr 127.0.0.10 ip daddr 127.0.0.12 tcp dport {1143 + OFFSET} accept")
        for line in lines
    )
    drop = next(
        line for line in lines if line.startswith("ip daddr 127.0.0.10 tcp dport {") and " drop " in line
    )
    assert " 110," in drop and " 717," in drop  # 717 from anyone but the Mailbox servers is dropped
    assert next(i for i, line in enumerate(lines) if line == "# MBX2 (127.0.0.12)") > lines.index(drop)

    wrong = courriel("ports", "--format", "nftables", "--config", organization["CAS1"])
    assert wrong.returncode == 2 and "--organization" in wrong.stderr
    unknown = courriel("ports", "--organization", "--server", "nobody", "--config", organization["CAS1"])
    assert unknown.returncode == 1 and "no server named 'nobody'" in unknown.stderr
    one = ok(
        "ports",
        "--organization",
        "--server",
        "MBX2",
        "--format",
        "nftables",
        "--config",
        organization["CAS1"],
    )
    assert "# MBX2 (127.0.0.12)" in one and "# CAS1" not in one and "127.0.0.11 ip daddr 127.0.0.12" in one

    nft = require_tool("nft")
    require(os.geteuid() == 0, "root (nft -c talks to the kernel)")
    for name, ruleset in (("all", text), ("mbx2", one)):
        path = tmp_path / f"{name}.nft"
        path.write_text(ruleset)
        check = subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
