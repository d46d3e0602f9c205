"""The POP3 wire format: command lines in, multi-line text out.

In: RFC 1939 §3 ends commands with CRLF; a bare LF is accepted too (lenient in what we take).
A line longer than the limit is thrown away as it arrives (memory stays bounded however long it
runs) and reported once its end is seen, so the error reply keeps its place among pipelined
replies (RFC 2449 §6.6).

Out: each line of a multi-line response ends in CRLF; a line that begins with the termination
octet "." gets one more "." in front; the response ends with ".\\r\\n" (RFC 1939 §3). TOP sends
the header, the blank line that ends it, then the first n lines of the body (RFC 1939 §7).
Messages can be tens of megabytes, so that work is done with bytes.replace and find, which run
in C, rather than line by line in Python.
"""

from __future__ import annotations


class LineTooLong(Exception):
    """A line exceeded the limit; it has been discarded."""


class LineBuffer:
    def __init__(self, max_line: int) -> None:
        self._max_line = max_line  # octets, CRLF included (as RFC 2449 §4 counts them)
        self._buffer = bytearray()
        self._discarding = False

    def __len__(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def clear(self) -> None:
        self._buffer.clear()
        self._discarding = False

    def next_line(self) -> bytes | None:
        """The next complete line without its CRLF, or None until one has arrived.

        Raises LineTooLong for a line over the limit, once its end has arrived.
        """
        end = self._buffer.find(b"\n")
        if end == -1:
            if self._discarding or len(self._buffer) >= self._max_line:
                # Too long already: drop what we have and keep dropping until the LF.
                self._discarding = True
                self._buffer.clear()
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        if self._discarding or end + 1 > self._max_line:
            self._discarding = False
            raise LineTooLong
        return line.removesuffix(b"\r")


TERMINATOR = b".\r\n"


def normalize(message: bytes) -> bytes:
    """Every line ends in CRLF: bare LF becomes CRLF, a last line without one gets one."""
    text = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    return text


def dot_stuff(text: bytes) -> bytes:
    """Byte-stuff CRLF-terminated `text` and append the terminating line (RFC 1939 §3)."""
    if text.startswith(b"."):
        text = b"." + text
    # Each match consumes "\r\n." and the next match starts at the following "\r\n", so runs
    # of dot lines are all stuffed.
    return text.replace(b"\r\n.", b"\r\n..") + TERMINATOR


def top(text: bytes, lines: int) -> bytes:
    """The header of CRLF-terminated `text`, its blank line, and `lines` lines of the body.

    A message with no blank line is all header and comes back whole.
    """
    if text.startswith(b"\r\n"):
        body_start = 2  # empty header
    else:
        blank = text.find(b"\r\n\r\n")
        if blank == -1:
            return text
        body_start = blank + 4
    end = body_start
    for _ in range(lines):
        next_end = text.find(b"\r\n", end)
        if next_end == -1:
            break
        end = next_end + 2
    return text[:end]
