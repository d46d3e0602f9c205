"""Message bodies: the DATA reader (end marker, dot-unstuffing) and the checks shared with BDAT.

Throughput matters here, so the body is handled in bulk with `bytes.find` and `bytes.replace`,
never line by line in Python.

- End of data is `CRLF . CRLF` and nothing else (RFC 5321 §4.1.1.4). `LF . LF`, `CR . CR` and
  mixtures are content: accepting them is what SMTP smuggling exploits (CVE-2023-51764).
- Bare LF and bare CR inside the content are normalized to CRLF, as Postfix does with
  `smtpd_forbid_bare_newline = normalize`: mail from sloppy clients still arrives, and what we
  store or relay can never carry a lone LF or CR that a next hop might read as a line end.
- Dot-unstuffing removes the first "." of every line that starts with one (RFC 5321 §4.5.2).
- A body over the size limit is read to its end and discarded, so the session stays in sync,
  keeping only the last octets needed to find the end marker (RFC 1870 §6.2: then 552).
"""

from __future__ import annotations

import re

from courriel.core.replies import MESSAGE_TOO_BIG, TEXT_LINE_TOO_LONG, Reply

END_OF_DATA = b"\r\n.\r\n"
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")


class DotReader:
    """Collects one DATA body from successive input buffers."""

    __slots__ = ("_raw", "_cap", "overflow")

    def __init__(self, max_size: int) -> None:
        # The leading CRLF stands for the end of the DATA command line, so that a first line
        # "." or ".." matches the same patterns as any later line.
        self._raw = bytearray(b"\r\n")
        # Stuffing adds at most one octet to a line of at least three ("..CRLF" for "."), so
        # the raw form of a message that fits is at most 4/3 of the limit; the exact check on
        # the unstuffed message comes at the end.
        self._cap = max_size * 4 // 3 + len(END_OF_DATA) if max_size else 0
        self.overflow = False

    def consume(self, buffer: bytearray) -> bool:
        """Take input from `buffer`; True once the end marker was read (what follows stays there)."""
        raw = self._raw
        start = max(len(raw) - (len(END_OF_DATA) - 1), 0)
        raw += buffer
        buffer.clear()
        end = raw.find(END_OF_DATA, start)
        if end < 0:
            if self._cap and len(raw) > self._cap:
                self.overflow = True
                del raw[: -(len(END_OF_DATA) - 1)]
            return False
        buffer += raw[end + len(END_OF_DATA) :]
        del raw[end + 2 :]  # keep the CRLF that ends the last content line
        return True

    def message(self) -> bytes:
        """The message as the client meant it: line ends normalized, dots unstuffed."""
        raw = bytes(self._raw)
        self._raw = bytearray()
        crlf = raw.count(b"\r\n")
        if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
            raw = _LINE_ENDS.sub(b"\r\n", raw)
        return raw.replace(b"\r\n.", b"\r\n")[2:]


def check_body(message: bytes, *, max_size: int, max_line: int) -> Reply | None:
    """The size and line-length checks every body passes before the policy sees it."""
    if max_size and len(message) > max_size:
        return MESSAGE_TOO_BIG  # RFC 1870 §6.2
    if max_line and len(message) > max_line and longest_line(message) > max_line:
        return TEXT_LINE_TOO_LONG
    return None


def longest_line(message: bytes) -> int:
    """Length of the longest line, line end excluded (replace and split run in C, not per line)."""
    return max(map(len, message.replace(b"\r\n", b"\n").split(b"\n")))
