"""`courriel database list|new|mount|dismount|move|remove`: mailbox databases."""

from __future__ import annotations

import argparse

from courriel.admin.cli.arguments import leaf, noun
from courriel.admin.cli.render import emit, progress
from courriel.admin.commands.context import open_admin
from courriel.admin.commands.databases import default_database_url, move_database_to
from courriel.org.model import MailboxDatabase

COLUMNS = (("name", "Name"), ("server", "Server"), ("mounted", "Mounted"), ("url", "Url"))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verbs = noun(sub, "database", "mailbox databases")
    leaf(verbs, "list", "list the mailbox databases", run_list, listing=True)
    new = leaf(verbs, "new", "create a mailbox database, mounted", run_new)
    new.add_argument("name", metavar="NAME")
    new.add_argument("--server", help="the Mailbox server it lives on (default: this server)")
    new.add_argument(
        "--url",
        help="sqlite:///path (relative to that server's data dir) or postgresql://… "
        "(default sqlite:///databases/NAME.db)",
    )
    mount = leaf(verbs, "mount", "mount a database (on another Mailbox server with --server)", run_mount)
    mount.add_argument("name", metavar="NAME")
    mount.add_argument("--server", help="activate it on this Mailbox server instead")
    move = leaf(
        verbs,
        "move",
        "switch a database over to another Mailbox server: dismount, mount there; its traffic follows",
        run_move,
    )
    move.add_argument("name", metavar="NAME")
    move.add_argument("--server", required=True, help="the Mailbox server that takes it")
    for verb, text, handler in (
        ("dismount", "dismount a database: its mailboxes become unavailable", run_dismount),
        ("remove", "remove an empty database from the directory", run_remove),
    ):
        leaf(verbs, verb, text, handler).add_argument("name", metavar="NAME")


def _summary(db: MailboxDatabase) -> str:
    return f"{db.name}: {'mounted on ' + str(db.server) if db.mounted else 'dismounted'}"


async def run_list(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        emit(await admin.directory.list_databases(), COLUMNS, args.json)
    return 0


async def run_new(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        db = await admin.directory.new_database(
            args.name, args.url or default_database_url(args.name), args.server or admin.config.name
        )
    print(f"created {_summary(db)}")
    return 0


async def run_mount(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        db = await admin.directory.mount_database(args.name, args.server)
    print(_summary(db))
    return 0


async def run_move(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        db = await move_database_to(admin, args.name, args.server, progress)
    print(_summary(db))
    return 0


async def run_dismount(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        db = await admin.directory.dismount_database(args.name)
    print(_summary(db))
    return 0


async def run_remove(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        await admin.directory.remove_database(args.name)
    print(f"removed {args.name}")
    return 0
