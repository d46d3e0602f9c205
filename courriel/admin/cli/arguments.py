"""Building blocks of the `courriel` command line: leaf subcommands, flags generated from model fields, passwords.

Settings objects (connectors, transport config, protocol settings) get one `--flag` per field,
named like the Exchange parameter (`--max-message-size` for MaxMessageSize), so the command line
follows the model without a hand-written list.
"""

from __future__ import annotations

import argparse
import enum
import getpass
import sys
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping

from courriel.admin.commands.params import is_size_field
from courriel.org.codec import exchange_name, field_types, optional_inner

Handler = Callable[[argparse.Namespace], Awaitable[int | None] | int | None]


class UsageError(Exception):
    """The command line is incomplete in a way argparse cannot see (exit code 2)."""


def leaf(
    parent: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    handler: Handler,
    *,
    listing: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand that runs `handler`; `listing` adds --json."""
    parser = parent.add_parser(name, help=help_text, description=help_text)
    # SUPPRESS keeps a --config given before the subcommand when none is given after it.
    parser.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="server config file (default: $COURRIEL_CONFIG, then ./courriel.toml)",
    )
    if listing:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=handler)
    return parser


def noun(
    parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    parser = parent.add_parser(name, help=help_text, description=help_text)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    return verbs


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _metavar(cls: type, field: str) -> str:
    tp = optional_inner(field_types(cls)[field])[0]
    if typing.get_origin(tp) is tuple:
        inner = typing.get_args(tp)[0]
        return "PATTERN;COST,…" if typing.get_origin(inner) is tuple else "A,B,…"
    if tp is bool:
        return "true|false"
    if tp is float:
        return "DURATION"
    if tp is int:
        return "SIZE" if is_size_field(field) else "N"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "|".join(str(m.value) for m in tp)
    return "TEXT"


def _help(cls: type, field: str) -> str:
    name = exchange_name(field)
    tp = optional_inner(field_types(cls)[field])[0]
    if typing.get_origin(tp) is tuple:
        inner = typing.get_args(tp)[0]
        if isinstance(inner, type) and issubclass(inner, enum.Enum):
            return f"{name}: one or more of {', '.join(str(m.value) for m in inner)}"
        return f"{name} (comma-separated; $null clears)"
    if tp is int and is_size_field(field):
        return f"{name} (36MB, 512KB, 2GB …)"
    if tp is float:
        return f"{name} (seconds, 30s, 10min, 4h, or [d.]hh:mm:ss)"
    return name


def add_field_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    exclude: Iterable[str] = (),
    aliases: Mapping[str, str] = {},
) -> list[str]:
    """One `--flag` per settable field of `cls`; returns the fields (argparse dests) added."""
    skip = set(exclude)
    added = []
    group = parser.add_argument_group(f"{cls.__name__} parameters")
    for field in field_types(cls):
        if field in skip:
            continue
        names = [aliases[field], flag_name(field)] if field in aliases else [flag_name(field)]
        group.add_argument(
            *names,
            dest=field,
            default=None,
            metavar=_metavar(cls, field),
            help=_help(cls, field),
        )
        added.append(field)
    return added


def given(args: argparse.Namespace, fields: Iterable[str]) -> dict[str, str]:
    """The flags the administrator actually gave."""
    return {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}


def add_password_flags(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--password", help="the password (visible in the process list: prefer --password-stdin)"
    )
    source.add_argument("--password-stdin", action="store_true", help="read the password from standard input")


def read_password(args: argparse.Namespace, *, required: bool) -> str | None:
    """--password, --password-stdin, or a prompt when standard input is a terminal."""
    if args.password is not None:
        return str(args.password)
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not required:
        return None
    if not sys.stdin.isatty():
        raise UsageError("give the password with --password or --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != first:
        raise UsageError("the two passwords differ")
    return first
