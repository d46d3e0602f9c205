"""Message data for FETCH and SEARCH, loaded in batches and parsed at most once per message.

The store keeps, per message digest, what parsing the bytes yields: ENVELOPE and BODYSTRUCTURE
in wire form (RFC 9051 §7.5.2) and the decoded searchable headers and text (search_text.py).
FETCH and SEARCH read rows in batches (`message_meta`, one query for up to `BATCH` messages,
never one per message) and bytes in groups of at most `BYTES_PER_READ` (one worker-thread hop
per group, not one per message). A message is parsed for its analysis only when the cache lacks
what the command needs, and the result is saved for every later session.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final, Literal

from courriel.proto.imap.backend import Account, Analysis, MetaView
from courriel.proto.imap.bodystructure import body_structure
from courriel.proto.imap.envelope import envelope
from courriel.proto.imap.mime import Part, scan
from courriel.proto.imap.search_text import searchable_text

BATCH: Final = 500  # messages per metadata query and per output flush
BYTES_PER_READ: Final = 8 * 1024 * 1024  # message bytes held at once while answering
Need = Literal["structure", "text"]


def to_cache(wire: bytes) -> str:
    """Wire bytes as text for the cache: Latin-1 keeps every byte (8-bit headers included)."""
    return wire.decode("latin-1")


def from_cache(text: str) -> bytes:
    return text.encode("latin-1")


def analyse(digest: str, data: bytes, root: Part | None = None) -> Analysis:
    """Everything the cache holds about these bytes, from one scan."""
    tree = root if root is not None else scan(data)
    headers, text = searchable_text(data, tree)
    return Analysis(
        digest,
        envelope=to_cache(envelope(data, tree.headers)),
        bodystructure=to_cache(body_structure(data, True, tree)),
        headers=headers,
        text=text,
    )


def has(meta: MetaView, need: Need) -> bool:
    if need == "text":
        return meta.headers is not None and meta.text is not None
    return meta.envelope is not None and meta.bodystructure is not None


def byte_groups(metas: Sequence[MetaView]) -> Iterator[Sequence[MetaView]]:
    """Consecutive groups whose bytes fit in `BYTES_PER_READ` (a bigger message goes alone)."""
    start, total = 0, 0
    for i, meta in enumerate(metas):
        if i > start and total + meta.size > BYTES_PER_READ:
            yield metas[start:i]
            start, total = i, 0
        total += meta.size
    if start < len(metas):
        yield metas[start:]


async def complete(account: Account, metas: Sequence[MetaView], need: Need) -> dict[str, Analysis]:
    """Analysis for the messages whose cache lacks `need`, computed from their bytes and saved."""
    missing = [m for m in metas if not has(m, need)]
    fresh: dict[str, Analysis] = {}
    for group in byte_groups(missing):
        bodies = await account.read_messages([m.digest for m in group])
        fresh.update((digest, analyse(digest, data)) for digest, data in bodies.items())
    if fresh:
        await account.save_analysis(list(fresh.values()))
    return fresh
