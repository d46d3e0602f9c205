"""COMPRESS=DEFLATE (RFC 4978): both directions of the connection are compressed from here on.

Advertised once the client is authenticated (the session's data is what is worth compressing),
valid in the authenticated and selected states (§3). The tagged OK is the last uncompressed
thing the server sends, and the wire switches with no wait in between, so no byte of the
client's compressed stream can be read as plain text (the STARTTLS rule, RFC 9051 §11.1). Input
that arrived after the command and before the switch broke §3's "no pipelining past COMPRESS"
and is dropped. An unknown algorithm is BAD; a second COMPRESS is NO [COMPRESSIONACTIVE].
"""

from __future__ import annotations

from typing import Final

from courriel.proto.imap import commands as c
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap import writer as w
from courriel.proto.imap.session.context import Done, Session, bad, no

ALGORITHMS: Final = ("DEFLATE",)


async def compress(s: Session, cmd: c.Compress) -> Done | None:
    if cmd.algorithm not in ALGORITHMS:
        raise bad("Unknown compression algorithm")
    if s.compressed:
        raise no("DEFLATE is active already", rc.COMPRESSIONACTIVE)
    await s.flush()
    if not s.wire.start_compression(w.tagged(cmd.tag, "OK", "DEFLATE active")):
        raise no("Compression is not available on this connection")
    s.compressed = True
    s.reset_input()
    return None
