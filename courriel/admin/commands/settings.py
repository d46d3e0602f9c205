"""Organization settings as admin commands: transport config (Set-TransportConfig), IMAP4 and POP3 settings.

Each takes the administrator's text values (`--max-receive-size 20MB`, `--enabled $true`) and
hands typed changes to the directory, which validates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from courriel.admin.commands.params import parse_params
from courriel.org.directory import Directory
from courriel.org.model import ProtocolSettings, TransportConfig

# Noun → (settings class, protocol or None for the transport config).
SETTINGS_NOUNS: dict[str, tuple[type, str | None]] = {
    "transport-config": (TransportConfig, None),
    "imap-settings": (ProtocolSettings, "imap"),
    "pop-settings": (ProtocolSettings, "pop"),
}


async def show_settings(directory: Directory, noun: str) -> Any:
    _, proto = SETTINGS_NOUNS[noun]
    if proto is None:
        return await directory.get_transport_config()
    return await directory.get_protocol_settings(proto)


async def set_settings(directory: Directory, noun: str, raw: Mapping[str, str]) -> Any:
    cls, proto = SETTINGS_NOUNS[noun]
    changes = parse_params(cls, raw)
    if proto is None:
        return await directory.set_transport_config(**changes)
    return await directory.set_protocol_settings(proto, **changes)
