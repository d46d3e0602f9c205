"""The directory store: organization settings, accepted domains, topology and migrations, on both engines."""

from __future__ import annotations

import pytest

from courriel.core.errors import Conflict, NotFound, PermanentError
from courriel.org import schema
from courriel.org.directory import Directory
from courriel.org.model import MB, DomainType, LoginType, TransportConfig
from courriel.storage.migrations import current_version


async def test_migrations_rerun_idempotently_and_keep_data(db_url: str) -> None:
    first = await Directory.open(db_url)
    await first.init_organization("Contoso")
    version = await first.version()
    await first.close()
    second = await Directory.open(db_url)  # runs the migrations again
    try:
        assert await second.organization_name() == "Contoso"
        assert await second.version() == version
        async with second.engine.connect() as conn:
            assert await current_version(conn, schema.COMPONENT) == len(schema.MIGRATIONS)
    finally:
        await second.close()


async def test_every_write_bumps_the_version_and_a_refused_one_does_not(directory: Directory) -> None:
    start = await directory.version()
    await directory.init_organization("Contoso")
    assert await directory.version() == start + 1
    with pytest.raises(Conflict, match="already holds the organization 'Contoso'"):
        await directory.init_organization("Fabrikam")
    assert await directory.version() == start + 1


async def test_transport_config_defaults_changes_and_bounds(directory: Directory) -> None:
    assert await directory.get_transport_config() == TransportConfig()
    changed = await directory.set_transport_config(max_receive_size=20 * MB, transient_failure_retry_count=3)
    assert changed.max_receive_size == 20 * MB
    assert (await directory.get_transport_config()).transient_failure_retry_count == 3
    with pytest.raises(PermanentError, match="TransientFailureRetryCount must be between 0 and 15"):
        await directory.set_transport_config(transient_failure_retry_count=16)
    with pytest.raises(PermanentError, match="no settable parameter 'colour'"):
        await directory.set_transport_config(colour="blue")
    with pytest.raises(PermanentError, match="expected a whole number"):
        await directory.set_transport_config(max_send_size="big")
    assert (await directory.get_transport_config()).transient_failure_retry_count == 3


async def test_imap_and_pop_are_disabled_until_enabled(directory: Directory) -> None:
    assert not (await directory.get_protocol_settings("imap")).enabled
    assert not (await directory.get_protocol_settings("POP")).enabled
    imap = await directory.set_protocol_settings(
        "imap",
        enabled=True,
        login_type="plaintextlogin",
        external_connection_settings=["mail.example.test:993:ssl", "mail.example.test:143"],
    )
    assert imap.login_type == LoginType.PLAIN_TEXT_LOGIN
    assert imap.external_connection_settings == ("mail.example.test:993:SSL", "mail.example.test:143")
    assert (await directory.get_protocol_settings("imap")).enabled
    assert not (await directory.get_protocol_settings("pop")).enabled
    with pytest.raises(PermanentError, match="HostName:Port"):
        await directory.set_protocol_settings(
            "pop", external_connection_settings=["mail.example.test:99999:SSL"]
        )
    with pytest.raises(PermanentError, match="not one of PlainTextLogin"):
        await directory.set_protocol_settings("pop", login_type="Kerberos")
    with pytest.raises(PermanentError, match="not imap or pop"):
        await directory.get_protocol_settings("smtp")


async def test_accepted_domains(directory: Directory) -> None:
    first = await directory.add_accepted_domain("Example.TEST")
    assert (first.name, first.default, first.domain_type) == ("example.test", True, DomainType.AUTHORITATIVE)
    relay = await directory.add_accepted_domain("relay.example", "internalrelay")
    assert not relay.default and relay.domain_type == DomainType.INTERNAL_RELAY
    with pytest.raises(Conflict, match="already an accepted domain"):
        await directory.add_accepted_domain("EXAMPLE.test")
    with pytest.raises(PermanentError, match="not a domain name"):
        await directory.add_accepted_domain("bad..domain")

    await directory.set_accepted_domain("relay.example", default=True, domain_type="ExternalRelay")
    domains = {d.name: d for d in await directory.list_accepted_domains()}
    assert domains["relay.example"].default and not domains["example.test"].default
    assert domains["relay.example"].domain_type == DomainType.EXTERNAL_RELAY
    with pytest.raises(PermanentError, match="make another domain the default"):
        await directory.set_accepted_domain("relay.example", default=False)
    with pytest.raises(Conflict, match="is the default accepted domain"):
        await directory.remove_accepted_domain("relay.example")
    await directory.remove_accepted_domain("example.test")
    with pytest.raises(NotFound, match="not an accepted domain"):
        await directory.remove_accepted_domain("example.test")
    assert [d.name for d in await directory.list_accepted_domains()] == ["relay.example"]


async def test_a_domain_in_use_cannot_be_removed(org: Directory) -> None:
    await org.new_group("team@example.test", "Team")
    with pytest.raises(Conflict, match="still used by 1 recipient address"):
        await org.remove_accepted_domain("example.test")
    await org.remove_recipient("team@example.test")
    await org.remove_accepted_domain("example.test")


async def test_servers_sites_and_registration_is_idempotent(org: Directory) -> None:
    connectors = {c.name for c in await org.list_receive_connectors("ex01")}
    await org.set_receive_connector("EX01", "Default Frontend EX01", max_message_size=20 * MB)
    server = await org.register_server(
        "ex01", "ex01.example.test", ["mailbox", "client-access"], site="Paris", addresses=["192.0.2.10"]
    )
    assert server.roles == ("client-access", "mailbox")
    assert (server.site, server.addresses) == ("Paris", ("192.0.2.10",))
    assert {c.name for c in await org.list_receive_connectors("EX01")} == connectors
    kept = await org.get_receive_connector("EX01", "default frontend ex01")
    assert kept.max_message_size == 20 * MB  # the administrator's change survives re-registration
    assert [s.name for s in await org.list_sites()] == ["Default-First-Site-Name", "Paris"]
    with pytest.raises(PermanentError, match="edge role always runs alone"):
        await org.register_server("EDGE1", "edge1.example.test", ["edge", "mailbox"])
    with pytest.raises(PermanentError, match="roles are client-access"):
        await org.register_server("X", "x.example.test", ["hub"])
    with pytest.raises(NotFound, match="no server named 'nope'"):
        await org.get_server("nope")
    with pytest.raises(Conflict, match="site named 'paris' exists"):
        await org.new_site("paris")


async def test_adding_a_role_adds_its_connectors(directory: Directory) -> None:
    await directory.register_server("CAS1", "cas1.example.test", ["client-access"])
    assert len(await directory.list_receive_connectors("CAS1")) == 3
    await directory.register_server("CAS1", "cas1.example.test", ["client-access", "mailbox"])
    default = await directory.get_receive_connector("CAS1", "Default CAS1")
    assert default.bindings == ("0.0.0.0:2525", "[::]:2525")  # co-located: Transport moves off 25
    assert len(await directory.list_receive_connectors("CAS1")) == 5


async def test_mailbox_databases(org: Directory) -> None:
    await org.register_server("CAS2", "cas2.example.test", ["client-access"])
    with pytest.raises(PermanentError, match="does not run the mailbox role"):
        await org.new_database("DB02", "sqlite:///databases/DB02.db", "CAS2")
    with pytest.raises(Conflict, match="named 'db01' exists"):
        await org.new_database("db01", "sqlite:///x.db", "EX01")
    with pytest.raises(PermanentError, match="must be sqlite"):
        await org.new_database("DB03", "mysql://x", "EX01")
    await org.register_server("MBX2", "mbx2.example.test", ["mailbox"])

    dismounted = await org.dismount_database("DB01")
    assert (dismounted.mounted, dismounted.server) == (False, None)
    moved = await org.mount_database("db01", "MBX2")
    assert (moved.mounted, moved.server) == (True, "MBX2")
    back = await org.mount_database("DB01", "EX01")
    assert back.server == "EX01"
    mailbox = await org.new_mailbox("alice@example.test", "Alice", None)
    assert (await org.database_for(mailbox)).name == "DB01"
    assert (await org.database_for("ALICE@example.test")).server == "EX01"
    with pytest.raises(Conflict, match="still holds 1 mailbox"):
        await org.remove_database("DB01")
    await org.remove_recipient("alice@example.test")
    await org.remove_database("DB01")
    assert await org.list_databases() == []
