"""`courriel`: the administrator's command (console script). One subcommand module per noun.

Exit codes: 0 done; 1 refused (not found, conflict, invalid value, bad config file, directory
unreachable); 2 usage error. Errors go to standard error as `courriel: error: …`.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from courriel.admin.cli import (
    connector,
    contact,
    database,
    domain,
    group,
    mailbox,
    maintenance,
    monitoring,
    ports,
    settings,
    setup,
)
from courriel.admin.cli.arguments import UsageError
from courriel.core.errors import CourrielError

PROG = "courriel"
NOUNS = (setup, domain, mailbox, group, contact, connector, database, ports, settings, monitoring, maintenance)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Administer a Courriel organization: its directory, this server's setup, queues and logs.",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="PATH",
        help="server config file (default: $COURRIEL_CONFIG, then ./courriel.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in NOUNS:
        module.register(sub)
    return parser


def fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits with 2 on a usage error
    try:
        result = args.handler(args)
        if inspect.isawaitable(result):
            result = asyncio.run(result)  # type: ignore[arg-type]
        return int(result or 0)
    except UsageError as exc:
        return fail(str(exc), 2)
    except CourrielError as exc:
        return fail(exc.detail, 1)
    except SQLAlchemyError as exc:
        return fail(f"directory database error: {getattr(exc, 'orig', None) or exc}", 1)
    except BrokenPipeError:
        # The reader went away (`courriel … | head`): stop quietly, as a SIGPIPE'd tool would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        return fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
