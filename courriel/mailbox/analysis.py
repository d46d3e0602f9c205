"""A message's IMAP analysis, made once when it is stored rather than at its first FETCH.

ENVELOPE and BODYSTRUCTURE in wire form (RFC 9051 §7.5.2), the decoded, case-folded text that
SEARCH matches (RFC 9051 §6.4.4) and the raw header block (BODY[HEADER…] of a message list's
FETCH, without opening the message file) depend only on the bytes, so they are kept per blob digest in
`mbx_analysis` (schema.py), written in the same transaction as the message row: a new message is
never visible without them, FETCH ENVELOPE reads text columns instead of parsing, and SEARCH
BODY/TEXT runs in SQL (query.search_text). The work runs in a worker thread, off the event loop.
A message whose analysis fails is still stored (nothing acknowledged is lost) and the IMAP
engine analyses it on first use, as it does for messages stored before this existed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from courriel.proto.imap.mime import header_block_end
from courriel.proto.imap.session.analysis import analyse
from courriel.storage.blobs import BlobRef

log = logging.getLogger(__name__)
RECENT_DIGESTS: Final = 4096  # digests analysed lately: a message for many recipients is parsed once
MAX_SIZE: Final = 16 * 1024 * 1024  # larger messages are analysed at first use, not held twice now


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """Analysis results for the message bytes with this digest; None fields are left as they are."""

    digest: str
    envelope: str | None = None
    bodystructure: str | None = None
    headers: str | None = None
    text: str | None = None
    header: str | None = None  # the raw header block, Latin-1

    def row(self) -> dict[str, str | None]:
        """The entry as `mbx_analysis` column values (schema.py), without `updated`."""
        return {
            "digest": self.digest,
            "envelope": self.envelope,
            "bodystructure": self.bodystructure,
            "headers": self.headers,
            "text": self.text,
            "header": self.header,
        }


Analyser = Callable[[str, bytes], CacheEntry]


def imap_analysis(digest: str, data: bytes) -> CacheEntry:
    """The IMAP engine's analysis and the header block; NULs dropped from the searchable text and
    a header block holding one not kept (PostgreSQL text cannot hold NUL)."""
    found = analyse(digest, data)
    block = data[: header_block_end(data, 0, len(data))[1]]
    return CacheEntry(
        digest,
        found.envelope,
        found.bodystructure,
        (found.headers or "").replace("\x00", ""),
        (found.text or "").replace("\x00", ""),
        None if b"\x00" in block else block.decode("latin-1"),
    )


class DeliveryAnalysis:
    """Analyses new messages for the store, skipping digests it analysed lately."""

    def __init__(self, analyser: Analyser | None) -> None:
        self._analyser = analyser
        self._recent: OrderedDict[str, None] = OrderedDict()

    def wanted(self, refs: Sequence[BlobRef]) -> list[str]:
        """The digests worth analysing now: not lately done, and not huge (left to first use)."""
        if self._analyser is None:
            return []
        return list(
            dict.fromkeys(r.digest for r in refs if r.size <= MAX_SIZE and r.digest not in self._recent)
        )

    async def of(self, bodies: Mapping[str, bytes]) -> dict[str, CacheEntry]:
        """Entries for the digests in `bodies` not analysed lately (in one worker-thread hop)."""
        analyser = self._analyser
        todo = {d: data for d, data in bodies.items() if d not in self._recent}
        if analyser is None or not todo:
            return {}

        def run() -> dict[str, CacheEntry]:
            out: dict[str, CacheEntry] = {}
            for digest, data in todo.items():
                try:
                    out[digest] = analyser(digest, data)
                except Exception:  # a parser bug must not refuse mail: FETCH analyses it later
                    log.exception("could not analyse message %s at delivery", digest)
            return out

        return await asyncio.to_thread(run)

    def forget(self, digests: Iterable[str]) -> None:
        """These digests' analysis may have been dropped with their last message."""
        for digest in digests:
            self._recent.pop(digest, None)

    def stored(self, digests: Sequence[str]) -> None:
        """These digests' analysis is committed."""
        for digest in digests:
            self._recent[digest] = None
            self._recent.move_to_end(digest)
        while len(self._recent) > RECENT_DIGESTS:
            self._recent.popitem(last=False)
