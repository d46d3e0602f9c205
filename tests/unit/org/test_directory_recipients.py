"""Recipients in the directory: mailboxes, groups, contacts and proxy addresses, on both engines."""

from __future__ import annotations

import pytest

from courriel.core.errors import Conflict, NotFound, PermanentError
from courriel.org.directory import Directory
from courriel.org.model import MB, RecipientKind
from courriel.security.passwords import verify_password


async def test_new_mailbox(org: Directory) -> None:
    alice = await org.new_mailbox(
        "Alice@Example.test", "Alice Liddell", "s3cret!", addresses=["al@example.test"]
    )
    assert alice.kind == RecipientKind.MAILBOX
    assert alice.primary_address == "Alice@example.test"  # the local part as entered, the domain lower-cased
    assert alice.addresses == ("Alice@example.test", "al@example.test")
    assert alice.database == "DB01"
    assert alice.guid is not None and len(alice.guid) == 32 and int(alice.guid, 16) >= 0
    assert alice.password_hash is not None and alice.password_hash.startswith("$argon2id$")
    assert verify_password(alice.password_hash, "s3cret!")
    assert (alice.imap_enabled, alice.pop_enabled, alice.hidden) == (True, True, False)
    assert await org.get_recipient("AL@EXAMPLE.TEST") == alice

    with pytest.raises(PermanentError, match="example.org is not an accepted domain"):
        await org.new_mailbox("bob@example.org", "Bob", None)
    with pytest.raises(PermanentError, match="not a valid address"):
        await org.new_mailbox("bob@@example.test", "Bob", None)
    with pytest.raises(PermanentError, match="display name cannot be empty"):
        await org.new_mailbox("bob@example.test", "  ", None)
    with pytest.raises(NotFound, match="no mailbox database named 'DB09'"):
        await org.new_mailbox("bob@example.test", "Bob", None, "DB09")
    with pytest.raises(PermanentError, match="password cannot be empty"):
        await org.new_mailbox("bob@example.test", "Bob", "")
    with pytest.raises(NotFound, match="no recipient has the address bob@example.test"):
        await org.get_recipient("bob@example.test")


async def test_proxy_addresses_are_unique_case_insensitively_across_kinds(org: Directory) -> None:
    await org.new_mailbox("alice@example.test", "Alice", None, addresses=["sales@example.test"])
    with pytest.raises(Conflict, match="already used by Alice \\(mailbox\\)"):
        await org.new_mailbox("ALICE@EXAMPLE.TEST", "Other", None)
    with pytest.raises(Conflict, match="SALES@example.test is already used"):
        await org.new_group("SALES@example.test", "Sales")
    with pytest.raises(Conflict):
        await org.new_contact("Sales@Example.Test", "sales@partner.example", "Sales contact")
    await org.new_mailbox("bob@example.test", "Bob", None)
    with pytest.raises(Conflict, match="already used by Alice"):
        await org.set_mailbox("bob@example.test", add_addresses=["Sales@example.test"])
    assert len(await org.list_recipients()) == 2


async def test_set_mailbox(org: Directory) -> None:
    await org.new_mailbox("alice@example.test", "Alice", "old-password")
    changed = await org.set_mailbox(
        "ALICE@example.test",
        password="new-password",
        display_name="Alice L.",
        add_addresses=["a.liddell@example.test"],
        primary_address="a.liddell@example.test",
        imap_enabled=False,
        hidden=True,
        prohibit_send_quota=2048 * MB,
        max_send_size=None,
    )
    assert changed.display_name == "Alice L."
    assert changed.primary_address == "a.liddell@example.test"
    assert set(changed.addresses) == {"a.liddell@example.test", "alice@example.test"}  # the old one stays
    assert (changed.imap_enabled, changed.pop_enabled, changed.hidden) == (False, True, True)
    assert changed.prohibit_send_quota == 2048 * MB
    assert changed.password_hash is not None and verify_password(changed.password_hash, "new-password")

    with pytest.raises(PermanentError, match="is the primary address"):
        await org.set_mailbox("alice@example.test", remove_addresses=["A.Liddell@example.test"])
    with pytest.raises(NotFound, match="has no address nobody@example.test"):
        await org.set_mailbox("alice@example.test", remove_addresses=["nobody@example.test"])
    removed = await org.set_mailbox("alice@example.test", remove_addresses=["ALICE@example.test"])
    assert removed.addresses == ("a.liddell@example.test",)
    with pytest.raises(PermanentError, match="must be a size in bytes or unlimited"):
        await org.set_mailbox("a.liddell@example.test", issue_warning_quota=-1)
    with pytest.raises(PermanentError, match="unknown mailbox setting"):
        await org.set_mailbox("a.liddell@example.test", colour=1)


async def test_a_refused_set_mailbox_changes_nothing(org: Directory) -> None:
    await org.new_mailbox("alice@example.test", "Alice", None)
    await org.new_group("team@example.test", "Team")
    with pytest.raises(Conflict):
        await org.set_mailbox(
            "alice@example.test", display_name="Changed", add_addresses=["team@example.test"]
        )
    assert (await org.get_recipient("alice@example.test")).display_name == "Alice"


async def test_least_loaded_mounted_database_takes_new_mailboxes(org: Directory) -> None:
    await org.new_database("DB02", "sqlite:///databases/DB02.db", "EX01")
    placed = [(await org.new_mailbox(f"u{i}@example.test", f"User {i}", None)).database for i in range(4)]
    assert sorted(str(p) for p in placed) == ["DB01", "DB01", "DB02", "DB02"]
    await org.dismount_database("DB01")
    assert (await org.new_mailbox("u4@example.test", "User 4", None)).database == "DB02"
    with pytest.raises(PermanentError, match="DB01 is dismounted"):
        await org.new_mailbox("u5@example.test", "User 5", None, "DB01")
    await org.dismount_database("DB02")
    with pytest.raises(PermanentError, match="no mounted mailbox database"):
        await org.new_mailbox("u6@example.test", "User 6", None)


async def test_groups_and_membership(org: Directory) -> None:
    await org.new_mailbox("alice@example.test", "Alice", None)
    await org.new_mailbox("bob@example.test", "Bob", None)
    team = await org.new_group("team@example.test", "Team", ["alice@example.test", "BOB@example.test"])
    assert team.kind == RecipientKind.GROUP and team.database is None
    assert [m.primary_address for m in await org.members("team@example.test")] == [
        "alice@example.test",
        "bob@example.test",
    ]
    with pytest.raises(PermanentError, match="cannot be a member of itself"):
        await org.add_member("team@example.test", "TEAM@example.test")
    with pytest.raises(Conflict, match="already a member"):
        await org.add_member("team@example.test", "alice@example.test")
    # A loop through another group is allowed, as in Exchange: the categorizer expands each group once.
    await org.new_group("all@example.test", "All", ["team@example.test"])
    await org.add_member("team@example.test", "all@example.test")
    assert "all@example.test" in [m.primary_address for m in await org.members("team@example.test")]

    await org.remove_member("team@example.test", "bob@example.test")
    with pytest.raises(NotFound, match="not a member"):
        await org.remove_member("team@example.test", "bob@example.test")
    with pytest.raises(PermanentError, match="is a mailbox, not a group"):
        await org.add_member("alice@example.test", "bob@example.test")
    with pytest.raises(NotFound):
        await org.new_group("other@example.test", "Other", ["ghost@example.test"])
    assert [g.primary_address for g in await org.list_recipients("group")] == [
        "all@example.test",
        "team@example.test",
    ]
    # Removing a recipient removes its memberships.
    await org.remove_recipient("alice@example.test", RecipientKind.MAILBOX)
    assert [m.primary_address for m in await org.members("team@example.test")] == ["all@example.test"]
    with pytest.raises(PermanentError, match="is a group, not a mailbox"):
        await org.remove_recipient("team@example.test", RecipientKind.MAILBOX)


async def test_mail_contacts(org: Directory) -> None:
    contact = await org.new_contact("partner@partner.example", "Partner@Partner.Example", "Partner")
    assert contact.kind == RecipientKind.CONTACT
    assert contact.external_address == "Partner@partner.example"
    alias = await org.new_contact("partner-alias@example.test", "partner@partner.example", "Partner alias")
    assert alias.primary_address == "partner-alias@example.test"
    moved = await org.set_recipient("partner@partner.example", external_address="p@elsewhere.example")
    assert moved.external_address == "p@elsewhere.example"
    await org.new_mailbox("alice@example.test", "Alice", None)
    with pytest.raises(PermanentError, match="only contacts have an external address"):
        await org.set_recipient("alice@example.test", external_address="x@elsewhere.example")
    with pytest.raises(PermanentError, match="is a contact, not a mailbox"):
        await org.set_mailbox("partner@partner.example", display_name="X")
    # Listings are ordered by primary address.
    assert [c.display_name for c in await org.list_recipients(RecipientKind.CONTACT)] == [
        "Partner alias",
        "Partner",
    ]
