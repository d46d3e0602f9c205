"""`courriel maintenance gc`: remove finished queue messages and message bodies nothing references."""

from __future__ import annotations

import argparse

from courriel.admin.cli.arguments import leaf, noun
from courriel.admin.cli.render import print_json, print_table
from courriel.admin.commands.context import open_admin
from courriel.admin.commands.maintenance import collect_garbage

COLUMNS = (
    ("store", "Store"),
    ("blobs", "Blobs"),
    ("bytes", "Bytes"),
    ("temporary_files", "TemporaryFiles"),
    ("skipped", "Skipped"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verbs = noun(sub, "maintenance", "storage maintenance on this server")
    gc = leaf(
        verbs,
        "gc",
        "remove finished queue messages and unreferenced blobs older than an hour (the server does it hourly)",
        run_gc,
        listing=True,
    )
    gc.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")


async def run_gc(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        done = await collect_garbage(admin, dry_run=args.dry_run)
    if args.json:
        print_json(done)
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"queue: {verb} {done['queue_messages']} finished message(s)")
    print(f"blob stores ({verb}):")
    print_table(done["stores"], COLUMNS)
    return 0
