"""`courriel ports` and `courriel server list`: where this server listens, and the servers of the organization."""

from __future__ import annotations

import argparse

from courriel.admin.cli.arguments import leaf, noun
from courriel.admin.cli.render import emit
from courriel.admin.commands.context import open_admin
from courriel.admin.commands.ports import listening_ports

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
SERVER_COLUMNS = (
    ("name", "Name"),
    ("fqdn", "Fqdn"),
    ("roles", "Roles"),
    ("site", "Site"),
    ("addresses", "Addresses"),
    ("port_offset", "PortOffset"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    leaf(
        sub,
        "ports",
        "the ports this server listens on, per role, service and connector",
        run_ports,
        listing=True,
    )
    servers = noun(sub, "server", "servers of the organization")
    leaf(servers, "list", "list the servers", run_server_list, listing=True)


async def run_ports(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        emit(await listening_ports(admin), PORT_COLUMNS, args.json)
    return 0


async def run_server_list(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        emit(await admin.directory.list_servers(), SERVER_COLUMNS, args.json)
    return 0
