"""The `courriel` command: argparse subcommands (one module per noun) over admin/commands."""
