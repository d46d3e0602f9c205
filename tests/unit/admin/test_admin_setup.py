"""`courriel init`, `--join`, `demo init` and `courriel ports` through the command layer, on both engines."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from courriel.admin.commands.context import open_admin
from courriel.admin.commands.ports import listening_ports
from courriel.admin.commands.setup import ServerSetup, demo_init, init_server
from courriel.core.errors import ConfigError, Conflict, NotFound
from courriel.org.model import RecipientKind


async def test_init_then_join_a_second_server(db_url: str, tmp_path: Path) -> None:
    first = ServerSetup(
        config_path=tmp_path / "ex01" / "courriel.toml",
        server="EX01",
        fqdn="ex01.example.test",
        directory_url=db_url,
        port_offset=20000,
    )
    report = await init_server(first, organization="Contoso", domain="example.test")
    assert report.config_written
    written = tomllib.loads(first.config_path.read_text())
    assert written["server"]["name"] == "EX01" and written["directory"]["url"] == db_url
    assert (tmp_path / "ex01" / "data").is_dir()
    with pytest.raises(Conflict, match="already holds the organization 'Contoso'; use --join"):
        await init_server(first, organization="Contoso", domain="example.test")
    with pytest.raises(ConfigError, match="sets server.name = 'EX01', not 'EX02'"):
        await init_server(
            ServerSetup(config_path=first.config_path, server="EX02"), organization="X", domain="x.test"
        )

    second = ServerSetup(
        config_path=tmp_path / "mbx2" / "courriel.toml",
        server="MBX2",
        roles=("mailbox",),
        directory_url=db_url,
    )
    joined = await init_server(second, organization=None, domain=None, join=True, database="DB02")
    assert any("joined the organization 'Contoso'" in note for note in joined.notes)

    async with open_admin(str(second.config_path)) as admin:
        servers = {s.name: s for s in await admin.directory.list_servers()}
        assert set(servers) == {"EX01", "MBX2"} and servers["EX01"].port_offset == 20000
        default = await admin.directory.get_receive_connector("MBX2", "Default MBX2")
        assert default.bindings == ("0.0.0.0:25", "[::]:25")  # stand-alone Mailbox: Transport keeps 25
        assert {(d.name, d.server) for d in await admin.directory.list_databases()} == {
            ("DB01", "EX01"),
            ("DB02", "MBX2"),
        }


async def test_join_needs_an_organization(db_url: str, tmp_path: Path) -> None:
    setup = ServerSetup(config_path=tmp_path / "courriel.toml", server="EX01", directory_url=db_url)
    with pytest.raises(NotFound, match="holds no organization to join"):
        await init_server(setup, organization=None, domain=None, join=True)
    assert not setup.config_path.exists()  # nothing is written for a setup that failed


async def test_demo_init_is_idempotent_and_ports_show_the_offset(tmp_path: Path) -> None:
    report = await demo_init(tmp_path / "demo")
    assert report is not None and report.config.listen == ("127.0.0.1",)
    assert await demo_init(tmp_path / "demo") is None
    async with open_admin(str(tmp_path / "demo" / "courriel.toml")) as admin:
        directory = admin.directory
        assert await directory.organization_name() == "Courriel Demo"
        assert [m.display_name for m in await directory.list_recipients(RecipientKind.MAILBOX)] == [
            "Alice Demo",
            "Bob Demo",
        ]
        assert [m.primary_address for m in await directory.members("team@example.test")] == [
            "alice@example.test",
            "bob@example.test",
        ]
        assert (await directory.get_protocol_settings("imap")).enabled
        assert (await directory.get_protocol_settings("pop")).enabled
        rows = await listening_ports(admin)
    by_connector = {r["connector"]: r for r in rows if r["connector"]}
    frontend = by_connector["Default Frontend demo"]
    assert (frontend["address"], frontend["port"], frontend["bound_port"]) == ("127.0.0.1", 25, 10025)
    assert (by_connector["Default demo"]["port"], by_connector["Default demo"]["bound_port"]) == (2525, 12525)
    imap = [r for r in rows if r["service"] == "imap-proxy"]
    assert [(r["port"], r["bound_port"], r["status"]) for r in imap] == [
        (143, 10143, "Enabled"),
        (993, 10993, "Enabled"),
    ]
