"""`courriel group list|new|add-member|remove-member|members|remove`: distribution groups."""

from __future__ import annotations

import argparse

from courriel.admin.cli.arguments import leaf, noun
from courriel.admin.cli.render import emit
from courriel.admin.commands.context import open_admin
from courriel.admin.commands.params import parse_list
from courriel.org.model import RecipientKind

COLUMNS = (("primary_address", "PrimarySmtpAddress"), ("display_name", "DisplayName"), ("members", "Members"))
MEMBER_COLUMNS = (
    ("primary_address", "PrimarySmtpAddress"),
    ("display_name", "DisplayName"),
    ("kind", "Kind"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verbs = noun(sub, "group", "distribution groups")
    leaf(verbs, "list", "list the groups", run_list, listing=True)
    new = leaf(verbs, "new", "create a group", run_new)
    new.add_argument("address", metavar="ADDRESS")
    new.add_argument(
        "--display-name", "--name", dest="display_name", help="display name (default: the local part)"
    )
    new.add_argument("--members", metavar="A,B,…", help="first members, by address")
    for verb, text, handler in (
        ("add-member", "add a member (a mailbox, contact or group)", run_add_member),
        ("remove-member", "remove a member", run_remove_member),
    ):
        parser = leaf(verbs, verb, text, handler)
        parser.add_argument("group", metavar="GROUP")
        parser.add_argument("member", metavar="MEMBER")
    members = leaf(verbs, "members", "list a group's direct members", run_members, listing=True)
    members.add_argument("group", metavar="GROUP")
    remove = leaf(verbs, "remove", "remove a group", run_remove)
    remove.add_argument("group", metavar="GROUP")


async def run_list(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        groups = await admin.directory.list_recipients(RecipientKind.GROUP)
        counts = {g.id: len(await admin.directory.members(g.primary_address)) for g in groups}
    if args.json:
        emit(groups, COLUMNS, True)
    else:
        emit(
            [
                {
                    "primary_address": g.primary_address,
                    "display_name": g.display_name,
                    "members": counts[g.id],
                }
                for g in groups
            ],
            COLUMNS,
            False,
        )
    return 0


async def run_new(args: argparse.Namespace) -> int:
    name = args.display_name or args.address.rpartition("@")[0]
    members = parse_list(args.members) if args.members else []
    async with open_admin(args.config) as admin:
        group = await admin.directory.new_group(args.address, name, members)
    print(f"created group {group.primary_address} with {len(members)} member(s)")
    return 0


async def run_add_member(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        await admin.directory.add_member(args.group, args.member)
    print(f"added {args.member} to {args.group}")
    return 0


async def run_remove_member(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        await admin.directory.remove_member(args.group, args.member)
    print(f"removed {args.member} from {args.group}")
    return 0


async def run_members(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        emit(await admin.directory.members(args.group), MEMBER_COLUMNS, args.json)
    return 0


async def run_remove(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        removed = await admin.directory.remove_recipient(args.group, RecipientKind.GROUP)
    print(f"removed group {removed.primary_address}")
    return 0
