"""`courriel mailbox list|new|set|show|move|remove` (New-/Set-/Get-/Remove-Mailbox, Set-CASMailbox, New-MoveRequest)."""

from __future__ import annotations

import argparse

from courriel.admin.cli.arguments import add_password_flags, leaf, noun, read_password
from courriel.admin.cli.render import emit, emit_object, progress
from courriel.admin.commands import recipients as commands
from courriel.admin.commands.context import open_admin
from courriel.admin.commands.databases import move_mailbox_to
from courriel.org.codec import exchange_name
from courriel.org.model import RecipientKind
from courriel.org.recipients import LIMITS

COLUMNS = (
    ("primary_address", "PrimarySmtpAddress"),
    ("display_name", "DisplayName"),
    ("database", "Database"),
    ("imap_enabled", "ImapEnabled"),
    ("pop_enabled", "PopEnabled"),
    ("hidden", "Hidden"),
)


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--imap-enabled", metavar="true|false", help="ImapEnabled (Set-CASMailbox)")
    parser.add_argument("--pop-enabled", metavar="true|false", help="PopEnabled (Set-CASMailbox)")
    parser.add_argument("--hidden", metavar="true|false", help="HiddenFromAddressListsEnabled")
    for limit in LIMITS:
        parser.add_argument(
            "--" + limit.replace("_", "-"),
            dest=limit,
            metavar="SIZE",
            help=f"{exchange_name(limit)} (36MB, 2GB, unlimited)",
        )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verbs = noun(sub, "mailbox", "mailboxes")
    leaf(verbs, "list", "list the mailboxes", run_list, listing=True)

    new = leaf(verbs, "new", "create a mailbox", run_new)
    new.add_argument("address", metavar="ADDRESS", help="primary SMTP address, in an accepted domain")
    new.add_argument(
        "--display-name", "--name", dest="display_name", help="display name (default: the local part)"
    )
    new.add_argument("--database", help="mailbox database (default: the least-loaded mounted one)")
    new.add_argument("--addresses", metavar="A,B,…", help="more proxy addresses")
    add_password_flags(new)
    _add_options(new)

    change = leaf(verbs, "set", "change a mailbox", run_set)
    change.add_argument("address", metavar="ADDRESS", help="any of the mailbox's addresses")
    change.add_argument("--display-name", "--name", dest="display_name")
    change.add_argument(
        "--primary-address", metavar="ADDRESS", help="new primary address (the old one stays)"
    )
    change.add_argument("--add-addresses", "--add-address", dest="add_addresses", metavar="A,B,…")
    change.add_argument("--remove-addresses", "--remove-address", dest="remove_addresses", metavar="A,B,…")
    add_password_flags(change)
    _add_options(change)

    show = leaf(verbs, "show", "show a mailbox", run_show, listing=True)
    show.add_argument("address", metavar="ADDRESS")
    move = leaf(
        verbs, "move", "move a mailbox to another database; it stays usable while it is copied", run_move
    )
    move.add_argument("address", metavar="ADDRESS", help="any of the mailbox's addresses")
    move.add_argument("--database", required=True, help="the mailbox database that takes it")
    remove = leaf(verbs, "remove", "remove a mailbox from the directory", run_remove)
    remove.add_argument("address", metavar="ADDRESS")


def _options(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, str | None]:
    return {name: getattr(args, name) for name in (*commands.FLAGS, *LIMITS, *names)}


async def run_list(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        emit(await admin.directory.list_recipients(RecipientKind.MAILBOX), COLUMNS, args.json)
    return 0


async def run_new(args: argparse.Namespace) -> int:
    password = read_password(args, required=True)
    async with open_admin(args.config) as admin:
        mailbox = await commands.new_mailbox(
            admin.directory,
            args.address,
            args.display_name,
            password,
            database=args.database,
            options=_options(args, ("addresses",)),
        )
    print(
        f"created mailbox {mailbox.primary_address} ({mailbox.display_name}) in database {mailbox.database}"
    )
    return 0


async def run_set(args: argparse.Namespace) -> int:
    password = read_password(args, required=False)
    async with open_admin(args.config) as admin:
        mailbox = await commands.set_mailbox(
            admin.directory,
            args.address,
            password,
            _options(args, ("display_name", "primary_address", "add_addresses", "remove_addresses")),
        )
    print(f"updated mailbox {mailbox.primary_address}")
    return 0


async def run_show(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        found = await admin.directory.get_recipient(args.address, RecipientKind.MAILBOX)
    emit_object(found, args.json)
    return 0


async def run_move(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        await move_mailbox_to(admin, args.address, args.database, progress)
    return 0


async def run_remove(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        removed = await admin.directory.remove_recipient(args.address, RecipientKind.MAILBOX)
    print(f"removed mailbox {removed.primary_address}")
    return 0
