"""RFC 4978 COMPRESS=DEFLATE on one connection: raw DEFLATE (RFC 1951, no zlib header) each way.

Every batch the session writes is followed by a sync flush (§4: the peer must be able to
decode each response as soon as it arrives). Our compressor uses a 8 KiB window and a small
hash table (about 64 KiB of zlib state instead of 256 KiB: thousands of sessions may be
compressed) at level 1 (one core serves many sessions; mail text compresses well even so); the
decompressor takes the client's choice, up to the 32 KiB window §4 allows. Inflating is bounded:
`inflate` returns at most `limit` bytes and keeps the rest of the compressed input, so a small
"zip bomb" cannot grow the session's buffers past its high-water mark.
"""

from __future__ import annotations

import zlib
from typing import Final

LEVEL: Final = 1
WBITS: Final = 13  # the compressor's window: 8 KiB
MEM_LEVEL: Final = 6


class Deflate:
    __slots__ = ("_out", "_in", "_pending")

    def __init__(self) -> None:
        self._out = zlib.compressobj(LEVEL, zlib.DEFLATED, -WBITS, MEM_LEVEL)
        self._in = zlib.decompressobj(-zlib.MAX_WBITS)
        self._pending = b""  # compressed input not inflated yet

    def compress(self, data: bytes) -> bytes:
        return self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)

    def feed(self, data: bytes) -> None:
        self._pending = self._pending + data if self._pending else data

    def inflate(self, limit: int) -> bytes:
        """Up to `limit` bytes of what the client sent; b"" when everything fed is inflated.
        Raises `zlib.error` on a corrupt stream."""
        if not self._pending:
            return b""
        out = self._in.decompress(self._pending, limit)
        self._pending = self._in.unconsumed_tail
        return out
