"""`courriel receive-connector …` and `courriel send-connector …`: list, new, set, show, remove.

Parameters are flags named like the Exchange ones (`--max-message-size 20MB`,
`--auth-mechanism Tls,BasicAuth`), generated from the model's fields. A receive connector is
named `SERVER\\Name` or just `Name` (on this server, or on --server).
"""

from __future__ import annotations

import argparse
from typing import Any

from courriel.admin.cli.arguments import add_field_flags, given, leaf, noun
from courriel.admin.cli.render import emit, emit_object
from courriel.admin.commands import connectors as commands
from courriel.admin.commands.context import open_admin
from courriel.admin.commands.records import record
from courriel.org.defaults import USAGES
from courriel.org.model import ReceiveConnector, SendConnector

RECEIVE_COLUMNS = (
    ("identity", "Identity"),
    ("transport_role", "TransportRole"),
    ("bindings", "Bindings"),
    ("remote_ip_ranges", "RemoteIPRanges"),
    ("enabled", "Enabled"),
)
SEND_COLUMNS = (
    ("name", "Name"),
    ("address_spaces", "AddressSpaces"),
    ("dns_routing_enabled", "DNSRoutingEnabled"),
    ("smart_hosts", "SmartHosts"),
    ("enabled", "Enabled"),
)
# New-SendConnector's singular spellings, as administrators type them: --address-space x --smart-host y
SEND_ALIASES = {"address_spaces": "--address-space", "smart_hosts": "--smart-host"}
RECEIVE_ALIASES = {"auth_mechanisms": "--auth-mechanism"}
FIXED = ("server", "name")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    receive = noun(sub, "receive-connector", "receive connectors (the SMTP listeners' policy)")
    listing = leaf(receive, "list", "list receive connectors", run_receive_list, listing=True)
    listing.add_argument("--server", help="only this server's connectors")

    new = leaf(receive, "new", "create a receive connector", run_receive_new)
    _identity(new)
    new.add_argument(
        "--usage", choices=USAGES, help="preset the permission groups and mechanisms, as -Usage does"
    )
    new.set_defaults(fields=add_field_flags(new, ReceiveConnector, exclude=FIXED, aliases=RECEIVE_ALIASES))

    change = leaf(receive, "set", "change a receive connector", run_receive_set)
    _identity(change)
    change.add_argument("--name", dest="new_name", metavar="NAME", help="rename it")
    change.set_defaults(
        fields=add_field_flags(change, ReceiveConnector, exclude=FIXED, aliases=RECEIVE_ALIASES)
    )

    show = leaf(receive, "show", "show a receive connector", run_receive_show, listing=True)
    _identity(show)
    remove = leaf(receive, "remove", "remove a receive connector", run_receive_remove)
    _identity(remove)

    send = noun(sub, "send-connector", "send connectors (how mail leaves the organization)")
    leaf(send, "list", "list send connectors", run_send_list, listing=True)
    new_send = leaf(send, "new", "create a send connector", run_send_new)
    new_send.add_argument("name", metavar="NAME")
    new_send.set_defaults(fields=add_field_flags(new_send, SendConnector, exclude=("name",), aliases=SEND_ALIASES))
    set_send = leaf(send, "set", "change a send connector", run_send_set)
    set_send.add_argument("name", metavar="NAME")
    set_send.add_argument("--name", dest="new_name", metavar="NAME", help="rename it")
    set_send.set_defaults(fields=add_field_flags(set_send, SendConnector, exclude=("name",), aliases=SEND_ALIASES))
    for verb, text, handler in (
        ("show", "show a send connector", run_send_show),
        ("remove", "remove a send connector", run_send_remove),
    ):
        leaf(send, verb, text, handler, listing=verb == "show").add_argument("name", metavar="NAME")


def _identity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("identity", metavar="[SERVER\\]NAME")
    parser.add_argument("--server", help="the connector's server (default: this server)")


def _changes(args: argparse.Namespace) -> dict[str, str]:
    changes = given(args, args.fields)
    if getattr(args, "new_name", None):
        changes["name"] = args.new_name
    return changes


def _receive_row(connector: ReceiveConnector) -> dict[str, Any]:
    return {"identity": commands.connector_identity(connector), **record(connector)}


async def run_receive_list(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        connectors = await admin.directory.list_receive_connectors(args.server)
    emit([_receive_row(c) for c in connectors], RECEIVE_COLUMNS, args.json)
    return 0


async def run_receive_new(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        connector = await commands.new_receive_connector(
            admin, args.identity, _changes(args), server=args.server, usage=args.usage
        )
    print(f"created receive connector {commands.connector_identity(connector)}")
    return 0


async def run_receive_set(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        connector = await commands.set_receive_connector(
            admin, args.identity, _changes(args), server=args.server
        )
    print(f"updated receive connector {commands.connector_identity(connector)}")
    return 0


async def run_receive_show(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        server, name = commands.split_identity(args.identity, args.server, admin.config.name)
        connector = await admin.directory.get_receive_connector(server, name)
    emit_object(connector, args.json)
    return 0


async def run_receive_remove(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        server, name = commands.split_identity(args.identity, args.server, admin.config.name)
        await admin.directory.remove_receive_connector(server, name)
    print(f"removed receive connector {server}\\{name}")
    return 0


async def run_send_list(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        connectors = await admin.directory.list_send_connectors()
    rows = [
        {**record(c), "address_spaces": [f"SMTP:{p};{cost}" for p, cost in c.address_spaces]}
        for c in connectors
    ]
    emit(connectors if args.json else rows, SEND_COLUMNS, args.json)
    return 0


async def run_send_new(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        connector = await commands.new_send_connector(admin, args.name, _changes(args))
    print(f"created send connector {connector.name}")
    return 0


async def run_send_set(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        connector = await commands.set_send_connector(admin, args.name, _changes(args))
    print(f"updated send connector {connector.name}")
    return 0


async def run_send_show(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        connector = await admin.directory.get_send_connector(args.name)
    emit_object(connector, args.json)
    return 0


async def run_send_remove(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        await admin.directory.remove_send_connector(args.name)
    print(f"removed send connector {args.name}")
    return 0
