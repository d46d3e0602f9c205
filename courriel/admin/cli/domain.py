"""`courriel domain list|add|set|remove`: accepted domains (Get-/New-/Set-/Remove-AcceptedDomain)."""

from __future__ import annotations

import argparse

from courriel.admin.cli.arguments import leaf, noun
from courriel.admin.cli.render import emit
from courriel.admin.commands.context import open_admin
from courriel.admin.commands.params import parse_bool

COLUMNS = (("name", "Name"), ("domain_type", "DomainType"), ("default", "Default"))
TYPE_HELP = "Authoritative, InternalRelay or ExternalRelay"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verbs = noun(sub, "domain", "accepted domains")
    leaf(verbs, "list", "list the accepted domains", run_list, listing=True)
    add = leaf(verbs, "add", "accept mail for a domain", run_add)
    add.add_argument("name", metavar="DOMAIN")
    add.add_argument("--domain-type", default="Authoritative", help=TYPE_HELP + " (default Authoritative)")
    add.add_argument("--default", action="store_true", help="make it the default domain")
    change = leaf(verbs, "set", "change a domain's type, or make it the default", run_set)
    change.add_argument("name", metavar="DOMAIN")
    change.add_argument("--domain-type", help=TYPE_HELP)
    change.add_argument("--default", metavar="true", help="true makes it the default domain")
    remove = leaf(
        verbs, "remove", "stop accepting mail for a domain (refused while addresses use it)", run_remove
    )
    remove.add_argument("name", metavar="DOMAIN")


async def run_list(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        emit(await admin.directory.list_accepted_domains(), COLUMNS, args.json)
    return 0


async def run_add(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        domain = await admin.directory.add_accepted_domain(args.name, args.domain_type, default=args.default)
    print(f"added {domain.name} ({domain.domain_type.value}{', default' if domain.default else ''})")
    return 0


async def run_set(args: argparse.Namespace) -> int:
    default = parse_bool(args.default) if args.default is not None else None
    async with open_admin(args.config) as admin:
        domain = await admin.directory.set_accepted_domain(
            args.name, domain_type=args.domain_type, default=default
        )
    print(f"{domain.name}: {domain.domain_type.value}{', default' if domain.default else ''}")
    return 0


async def run_remove(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        await admin.directory.remove_accepted_domain(args.name)
    print(f"removed {args.name}")
    return 0
