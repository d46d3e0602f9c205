"""`courriel transport-config|imap-settings|pop-settings show|set`: organization-wide settings.

The three nouns have one shape (Get-/Set-TransportConfig, -ImapSettings, -PopSettings), so one
piece builds them; each `set` flag is a field of the model (`--enabled true`,
`--login-type SecureLogin`, `--external-connection-settings host:993:SSL,host:143:TLS`).
"""

from __future__ import annotations

import argparse

from courriel.admin.cli.arguments import add_field_flags, given, leaf, noun
from courriel.admin.cli.render import emit_object
from courriel.admin.commands.context import open_admin
from courriel.admin.commands.settings import SETTINGS_NOUNS, set_settings, show_settings

HELP = {
    "transport-config": "organization-wide transport settings (Set-TransportConfig)",
    "imap-settings": "IMAP4 settings (Set-ImapSettings); IMAP4 is disabled until enabled here",
    "pop-settings": "POP3 settings (Set-PopSettings); POP3 is disabled until enabled here",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, (cls, _) in SETTINGS_NOUNS.items():
        verbs = noun(sub, name, HELP[name])
        leaf(verbs, "show", f"show the {name}", run_show, listing=True).set_defaults(noun=name)
        change = leaf(verbs, "set", f"change the {name}", run_set, listing=True)
        change.set_defaults(noun=name, fields=add_field_flags(change, cls))


async def run_show(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        emit_object(await show_settings(admin.directory, args.noun), args.json)
    return 0


async def run_set(args: argparse.Namespace) -> int:
    async with open_admin(args.config) as admin:
        emit_object(await set_settings(admin.directory, args.noun, given(args, args.fields)), args.json)
    return 0
