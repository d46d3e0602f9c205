"""Shared helper: frame bytes with the reader, then parse, as the engine will."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from courriel.proto.imap.commands import Command
from courriel.proto.imap.grammar import parse_command
from courriel.proto.imap.reader import CommandReader, CommandReceived

Parse = Callable[[bytes], Command]


def parse_wire(data: bytes) -> Command:
    """Parse exactly one command; literals are sent as announced (continuations ignored)."""
    reader = CommandReader()
    reader.feed(data if data.endswith(b"\n") else data + b"\r\n")
    for _ in range(100):
        event = reader.next_event()
        if event is None:
            break
        if isinstance(event, CommandReceived):
            return parse_command(event.command)
    raise AssertionError(f"no command framed from {data!r}")


@pytest.fixture
def parse() -> Parse:
    return parse_wire
