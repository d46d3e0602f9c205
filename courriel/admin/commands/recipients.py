"""Mailboxes as admin commands: text options (`--imap-enabled $false`, `--prohibit-send-quota 2GB`) to typed calls.

Groups, contacts and the other recipient operations take plain addresses and names, so the admin
faces call the directory for them directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from courriel.admin.commands.params import parse_bool, parse_list, parse_size
from courriel.core.errors import PermanentError
from courriel.org.directory import Directory
from courriel.org.model import Recipient
from courriel.org.recipients import LIMITS

FLAGS = ("imap_enabled", "pop_enabled", "hidden")
LISTS = ("addresses", "add_addresses", "remove_addresses")
TEXTS = ("display_name", "primary_address")


def parse_mailbox_options(raw: Mapping[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, text in raw.items():
        if text is None:
            continue
        if key in FLAGS:
            out[key] = parse_bool(text)
        elif key in LIMITS:
            out[key] = parse_size(text)
        elif key in LISTS:
            out[key] = parse_list(text)
        elif key in TEXTS:
            out[key] = text
        else:
            raise PermanentError(f"unknown mailbox option {key!r}")
    return out


async def new_mailbox(
    directory: Directory,
    address: str,
    display_name: str | None,
    password: str | None,
    *,
    database: str | None = None,
    options: Mapping[str, str | None] | None = None,
) -> Recipient:
    """New-Mailbox; the display name defaults to the address's local part."""
    parsed = parse_mailbox_options(options or {})
    name = display_name or address.rpartition("@")[0] or address
    return await directory.new_mailbox(address, name, password, database, **parsed)


async def set_mailbox(
    directory: Directory, key: str, password: str | None, options: Mapping[str, str | None]
) -> Recipient:
    return await directory.set_mailbox(key, password=password, **parse_mailbox_options(options))
