"""`courriel init`, `courriel demo init` and `courriel serve`: setting a server up and running it."""

from __future__ import annotations

import argparse
from pathlib import Path

from courriel.admin.cli.arguments import leaf, noun
from courriel.admin.cli.ports import PORT_COLUMNS
from courriel.admin.cli.render import print_table
from courriel.admin.commands.context import open_admin
from courriel.admin.commands.params import parse_list
from courriel.admin.commands.ports import listening_ports
from courriel.admin.commands.setup import DEFAULT_DATABASE, ServerSetup, demo_init, init_server
from courriel.config import load_config
from courriel.config.loader import config_path
from courriel.core.errors import PermanentError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = leaf(
        sub, "init", "set up this server: write its config, create or join the organization", run_init
    )
    init.add_argument("--organization", metavar="NAME", help="organization name (a new organization)")
    init.add_argument("--domain", metavar="DOMAIN", help="first accepted domain, the default one")
    init.add_argument("--server", metavar="NAME", help="this server's name (needed to write a new config)")
    init.add_argument("--fqdn", help="this server's fully qualified name (default NAME.localdomain)")
    init.add_argument(
        "--roles", metavar="ROLE,…", help="client-access, mailbox or edge (default client-access,mailbox)"
    )
    init.add_argument("--site", help="directory site (default Default-First-Site-Name)")
    init.add_argument("--listen", metavar="IP,…", help="local addresses to listen on (default 0.0.0.0)")
    init.add_argument("--port-offset", type=int, metavar="N", help="added to every port, e.g. 10000 → 10025")
    init.add_argument(
        "--directory-url", metavar="URL", help="sqlite:///path (relative to the data dir) or postgresql://…"
    )
    init.add_argument("--data-dir", metavar="DIR", help="queue, databases and logs (relative to the config)")
    init.add_argument(
        "--database", metavar="NAME", help=f"first mailbox database (default {DEFAULT_DATABASE})"
    )
    init.add_argument("--join", action="store_true", help="join the organization the directory already holds")

    demo = noun(sub, "demo", "the demonstration setup")
    demo_dir = leaf(
        demo, "init", "set up a demo organization in DIR (what `make serve` runs); idempotent", run_demo
    )
    demo_dir.add_argument("directory", type=Path, metavar="DIR")

    leaf(sub, "serve", "run this server's roles until stopped", run_serve)


async def run_init(args: argparse.Namespace) -> int:
    setup = ServerSetup(
        config_path=config_path(args.config),
        server=args.server,
        fqdn=args.fqdn,
        roles=tuple(parse_list(args.roles)) if args.roles is not None else None,
        site=args.site,
        listen=tuple(parse_list(args.listen)) if args.listen is not None else None,
        port_offset=args.port_offset,
        data_dir=args.data_dir,
        directory_url=args.directory_url,
    )
    report = await init_server(
        setup, organization=args.organization, domain=args.domain, database=args.database, join=args.join
    )
    for note in report.notes:
        print(note)
    return 0


async def run_demo(args: argparse.Namespace) -> int:
    target: Path = args.directory
    report = await demo_init(target)
    if report is None:
        print(f"{target / 'courriel.toml'} exists: the demo is set up already, nothing to do")
        return 0
    for note in report.notes:
        print(note)
    async with open_admin(str(report.config.path)) as admin:
        rows = await listening_ports(admin)
    print()
    print_table(rows, PORT_COLUMNS)
    print(f"\nstart it with: courriel serve --config {report.config.path}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        from courriel.roles.server import serve
    except ModuleNotFoundError as exc:
        if exc.name not in ("courriel.roles.server", "courriel.roles"):
            raise
        raise PermanentError(
            "this installation has no server roles (courriel.roles.server is missing)"
        ) from None
    return int(serve(config))
