"""A minimal asyncio IMAP client for the benchmark: it frames responses and nothing more.

Like the peer baseline's `miniimap.py` (`/work/shared/research/peer-baseline.md` §3), it
splits the server's output into response lines, reads literals (`{N}` CRLF then N octets,
RFC 9051 §4.3) whole, and stops at the tagged completion of its own command (RFC 9051
§7.1), so that the client costs little CPU next to the server it measures. It does not parse
FETCH data; callers count untagged responses or look for a token in them.

Every wait is bounded by `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


class ImapError(Exception):
    """A tagged NO/BAD, an unexpected BYE, or a closed connection."""


@dataclass
class Reply:
    status: bytes  # OK, NO or BAD
    untagged: list[bytes]  # each untagged response, literals inlined
    seconds: float  # from sending the command to its tagged completion
    octets: int  # bytes received for this command


class MiniImap:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float) -> None:
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self._tag = 0

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float = 60.0) -> MiniImap:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 20), timeout)
        client = cls(reader, writer, timeout)
        greeting = await client._response()
        if not greeting.startswith(b"* OK"):
            client.close()
            raise ImapError(f"greeting: {greeting[:200]!r}")
        return client

    async def _response(self) -> bytes:
        """One response: a line, with any literals it announces and the lines after them."""
        parts = []
        while True:
            line = await asyncio.wait_for(self._reader.readline(), self._timeout)
            if not line.endswith(b"\n"):
                raise ImapError("connection closed")
            parts.append(line)
            m = LITERAL.search(line)
            if m is None:
                return b"".join(parts)
            parts.append(await asyncio.wait_for(self._reader.readexactly(int(m.group(1))), self._timeout))

    async def command(self, text: str, keep: bool = True) -> Reply:
        """Send one command; return at its tagged completion; raise on NO/BAD.

        `keep=False` drops the untagged responses (counted only) to spare the client memory."""
        self._tag += 1
        tag = f"b{self._tag}".encode()
        start = time.perf_counter()
        self._writer.write(tag + b" " + text.encode() + b"\r\n")
        untagged: list[bytes] = []
        count = octets = 0
        while True:
            resp = await self._response()
            octets += len(resp)
            if resp.startswith(tag + b" "):
                status = resp[len(tag) + 1 :].split(b" ", 1)[0]
                reply = Reply(status, untagged, time.perf_counter() - start, octets)
                if status != b"OK":
                    raise ImapError(f"{text[:60]} -> {resp[:200]!r}")
                if not keep:
                    reply.untagged = [b""] * count
                return reply
            if resp.startswith(b"* BYE") and text != "LOGOUT":
                raise ImapError(f"BYE: {resp[:200]!r}")
            count += 1
            if keep:
                untagged.append(resp)

    async def login(self, user: str, password: str) -> None:
        await self.command(f'LOGIN "{user}" "{password}"')

    async def idle(self) -> None:
        """Enter IDLE (RFC 2177) and return once the server sent its continuation."""
        self._tag += 1
        self._writer.write(f"b{self._tag} IDLE\r\n".encode())
        while not (await self._response()).startswith(b"+"):
            pass

    def close(self) -> None:
        self._writer.close()

    async def aclose(self) -> None:
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 5)
        except (OSError, TimeoutError):
            pass


def search_hits(reply: Reply) -> int:
    """Number of UIDs in the `* SEARCH` responses of a reply."""
    return sum(len(r.split()) - 2 for r in reply.untagged if r.startswith(b"* SEARCH"))
