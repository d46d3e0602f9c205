"""`courriel ports` and `courriel server list`: where this server listens, and the servers of the organization.

`courriel ports --organization` prints the organization's flows in the seed's three tables
(`--json`: one flat list), or, with `--format nftables`, the firewall rules that allow them.
"""

from __future__ import annotations

import argparse
import sys

from courriel.admin.cli.arguments import UsageError, leaf, noun
from courriel.admin.cli.render import emit, print_json, print_table
from courriel.admin.commands.context import open_admin
from courriel.admin.commands.ports import listening_ports, organization_nftables, organization_ports
from courriel.org.flows import SECTIONS, Flow

PORT_COLUMNS = (
    ("role", "Role"),
    ("service", "Service"),
    ("connector", "Connector"),
    ("address", "Address"),
    ("port", "Port"),
    ("bound_port", "BoundPort"),
    ("tls", "TLS"),
    ("status", "Status"),
    ("purpose", "Purpose"),
)
FLOW_COLUMNS = (
    ("purpose", "Purpose"),
    ("port", "Port"),
    ("bound_port", "BoundPort"),
    ("source", "Source"),
    ("destination", "Destination"),
    ("connector", "Connector/Service"),
)
SERVER_COLUMNS = (
    ("name", "Name"),
    ("fqdn", "Fqdn"),
    ("roles", "Roles"),
    ("site", "Site"),
    ("addresses", "Addresses"),
    ("port_offset", "PortOffset"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ports = leaf(
        sub,
        "ports",
        "the ports this server listens on, per role, service and connector",
        run_ports,
        listing=True,
    )
    ports.add_argument(
        "--organization",
        action="store_true",
        help="the whole organization's flows (purpose, port, source, destination, connector)",
    )
    ports.add_argument(
        "--server", metavar="NAME", help="with --organization: only the flows this server sends or receives"
    )
    ports.add_argument(
        "--format",
        choices=("table", "nftables"),
        default="table",
        help="with --organization: nftables prints an `nft -f` ruleset allowing exactly those flows",
    )
    servers = noun(sub, "server", "servers of the organization")
    leaf(servers, "list", "list the servers", run_server_list, listing=True)


async def run_ports(args: argparse.Namespace) -> int:
    if not args.organization:
        if args.server is not None or args.format != "table":
            raise UsageError("--server and --format apply to --organization")
        async with open_admin(args.config) as admin:
            emit(await listening_ports(admin), PORT_COLUMNS, args.json)
        return 0
    if args.format == "nftables" and args.json:
        raise UsageError("--json and --format nftables exclude each other")
    async with open_admin(args.config) as admin:
        if args.format == "nftables":
            sys.stdout.write(await organization_nftables(admin, args.server))
            return 0
        _, flows, _ = await organization_ports(admin, args.server)
    if args.json:
        print_json([f.record() for f in flows])
    else:
        print_flow_tables(flows)
    return 0


def print_flow_tables(flows: list[Flow]) -> None:
    """One table per section of the seed, under its title; ends shown as `name (addresses)`."""
    first = True
    for section in SECTIONS:
        rows = [
            {
                "purpose": f.purpose,
                "port": f"{f.port}/{f.protocol.upper()}",
                "bound_port": f.bound_port,
                "source": str(f.source),
                "destination": str(f.destination),
                "connector": f.connector or f.service,
            }
            for f in flows
            if f.section == section
        ]
        if not rows:
            continue
        sys.stdout.write(("" if first else "\n") + f"{section}\n\n")
        print_table(rows, FLOW_COLUMNS)
        first = False
    if first:
        sys.stdout.write("(none)\n")


async def run_server_list(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        emit(await admin.directory.list_servers(), SERVER_COLUMNS, args.json)
    return 0
