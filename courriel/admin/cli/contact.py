"""`courriel contact list|new|remove`: mail contacts (an address here, a mailbox elsewhere)."""

from __future__ import annotations

import argparse

from courriel.admin.cli.arguments import leaf, noun
from courriel.admin.cli.render import emit
from courriel.admin.commands.context import open_admin
from courriel.org.model import RecipientKind

COLUMNS = (
    ("primary_address", "PrimarySmtpAddress"),
    ("display_name", "DisplayName"),
    ("external_address", "ExternalEmailAddress"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verbs = noun(sub, "contact", "mail contacts")
    leaf(verbs, "list", "list the contacts", run_list, listing=True)
    new = leaf(verbs, "new", "create a contact", run_new)
    new.add_argument("address", metavar="ADDRESS", help="the contact's address in the directory")
    new.add_argument("--external-address", required=True, metavar="ADDRESS", help="where its mail goes")
    new.add_argument(
        "--display-name", "--name", dest="display_name", help="display name (default: the local part)"
    )
    remove = leaf(verbs, "remove", "remove a contact", run_remove)
    remove.add_argument("address", metavar="ADDRESS")


async def run_list(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        emit(await admin.directory.list_recipients(RecipientKind.CONTACT), COLUMNS, args.json)
    return 0


async def run_new(args: argparse.Namespace) -> int:
    name = args.display_name or args.address.rpartition("@")[0]
    async with open_admin(args.config) as admin:
        contact = await admin.directory.new_contact(args.address, args.external_address, name)
    print(f"created contact {contact.primary_address} → {contact.external_address}")
    return 0


async def run_remove(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        removed = await admin.directory.remove_recipient(args.address, RecipientKind.CONTACT)
    print(f"removed contact {removed.primary_address}")
    return 0
