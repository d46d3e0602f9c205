"""Incremental framing of client input into commands, literals and raw lines (sans-I/O).

The I/O layer feeds whatever bytes arrived; `next_event` hands back one event at a time so the
engine can switch modes between two pipelined commands (after `AUTHENTICATE` or `IDLE` the next
lines are SASL responses or `DONE`, not commands).

Literals, RFC 9051 §4.3 and §7.5: a line ending in `{n}` announces n bytes of data. For a
synchronizing literal the reader emits `ContinuationNeeded`: the engine sends `+ …` (or calls
`abandon()` and answers the tag instead). `{n+}` is non-synchronizing (LITERAL+/LITERAL-,
RFC 7888) and `~{n}` is literal8 (BINARY, RFC 3516 §4.2).

Limits (DESIGN §6 "bounded everything"): the text and non-APPEND literals of one command share
`max_command`; an APPEND literal may reach `max_append` (RFC 7889 APPENDLIMIT). A refused
synchronizing literal is answered at once and the client sends nothing more (RFC 9051 §7.5).
A refused non-synchronizing literal still arrives: its bytes and the rest of the command are
read and dropped, never parsed as commands (RFC 7888 §4), unless it is beyond `max_skip`, where
the engine is told to close the connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, TypeAlias

# RFC 9051 §9: tag = 1*<any ASTRING-CHAR except "+">
_TAG: Final = re.compile(rb'([^\x00-\x20\x7f-\xff(){%*"\\+]+) ')
_MARKER: Final = re.compile(rb"(~?)\{(\d+)(\+?)\}\Z")
_APPEND: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+ APPEND ', re.IGNORECASE)
_TAIL: Final = 32  # bytes kept while dropping a line, enough to see a `{n+}` at its end


@dataclass(frozen=True, slots=True)
class RawCommand:
    """A framed command: `lines[i]` ends with the marker of `literals[i]`; CRLFs removed."""

    lines: tuple[bytes, ...]
    literals: tuple[bytes, ...] = ()

    @property
    def tag(self) -> str | None:
        return read_tag(self.lines[0])


@dataclass(frozen=True, slots=True)
class CommandReceived:
    command: RawCommand


@dataclass(frozen=True, slots=True)
class ContinuationNeeded:
    """Send a continuation request (`+ Ready for literal data`) or call `abandon()`."""

    tag: str | None
    size: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """Answer `tag status [code] text` (or `* BAD` without a tag); close when `close`."""

    tag: str | None
    status: str
    code: str | None
    text: str
    close: bool = False


@dataclass(frozen=True, slots=True)
class LineReceived:
    """A raw line in line mode (SASL response or IDLE's DONE), CRLF removed."""

    line: bytes


Event: TypeAlias = CommandReceived | ContinuationNeeded | Rejected | LineReceived


@dataclass(frozen=True, slots=True)
class ReaderLimits:
    max_command: int = 64 * 1024
    max_append: int = 50 * 1024 * 1024
    #: RFC 7888 §4 LITERAL-: non-synchronizing literals above 4096 bytes are refused.
    max_nonsync: int | None = None
    max_line: int = 64 * 1024
    max_skip: int = 50 * 1024 * 1024


def read_tag(line: bytes) -> str | None:
    m = _TAG.match(line)
    return m.group(1).decode("ascii") if m else None


def literal_marker(line: bytes) -> tuple[int, bool, bool] | None:
    """(size, synchronizing, literal8) when `line` ends with a literal marker outside quotes."""
    m = _MARKER.search(line)
    if m is None or _inside_quotes(line, m.start()):
        return None
    digits = m.group(2)
    size = int(digits) if len(digits) <= 19 else 1 << 63
    return size, m.group(3) != b"+", m.group(1) == b"~"


def _inside_quotes(line: bytes, end: int) -> bool:
    """Whether offset `end` falls inside a quoted string (RFC 9051 §4.3: quoted-specials are
    escaped with a backslash, so a quote after an odd run of backslashes does not close)."""
    i = line.find(b'"', 0, end)
    while i != -1:
        j = i + 1
        while True:
            j = line.find(b'"', j, end)
            if j == -1:
                return True
            k = j - 1
            while line[k] == 0x5C:
                k -= 1
            if (j - 1 - k) % 2 == 0:
                break
            j += 1
        i = line.find(b'"', j + 1, end)
    return False


@dataclass(slots=True)
class _Pending:
    lines: list[bytes] = field(default_factory=list)
    literals: list[bytes] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    used: int = 0  # bytes of lines and non-APPEND literals
    append_used: int = 0  # bytes of APPEND literals, bounded together (MULTIAPPEND-shaped input)
    append: bool = False
    discard: bool = False  # already refused: drop the rest of the command


class CommandReader:
    """Feed bytes, pull events. Modes: commands (default) or raw lines (`line_mode`)."""

    def __init__(self, limits: ReaderLimits | None = None) -> None:
        self.limits = limits or ReaderLimits()
        self._buf = bytearray()
        self._lines = False
        self._pending = _Pending()
        self._literal_left = 0  # bytes of the current literal still to come
        self._skip_left = 0  # bytes of a refused literal still to drop
        self._sync_waiting = False  # a sync literal whose continuation may still be abandoned
        self._dropping_line = False  # inside a line too long to keep

    def feed(self, data: bytes) -> None:
        self._buf += data

    def line_mode(self, enabled: bool) -> None:
        """Switch to raw lines (AUTHENTICATE, IDLE) and back to commands."""
        self._lines = enabled

    def abandon(self) -> None:
        """Refuse the synchronizing literal just announced: the client sends no data and waits
        for the tagged answer (RFC 9051 §7.5), so the partial command is dropped."""
        if self._sync_waiting:
            self._sync_waiting = False
            self._literal_left = 0
            self._pending = _Pending()

    def next_event(self) -> Event | None:
        """The next complete event, or None until more bytes are fed."""
        while True:
            if self._skip_left:
                if not self._skip():
                    return None
                continue
            if self._literal_left:
                if not self._read_literal():
                    return None
                continue
            if self._lines:
                return self._raw_line()
            event, progressed = self._command_line()
            if event is not None or not progressed:
                return event

    # ---- literals ---------------------------------------------------------------------------

    def _skip(self) -> bool:
        take = min(self._skip_left, len(self._buf))
        del self._buf[:take]
        self._skip_left -= take
        return self._skip_left == 0

    def _read_literal(self) -> bool:
        if not self._buf:
            return False
        self._sync_waiting = False
        take = min(self._literal_left, len(self._buf))
        pending = self._pending
        pending.chunks.append(bytes(self._buf[:take]))
        del self._buf[:take]
        self._literal_left -= take
        if self._literal_left:
            return False
        pending.literals.append(b"".join(pending.chunks))
        pending.chunks = []
        return True

    # ---- lines ------------------------------------------------------------------------------

    def _take_line(self, limit: int) -> bytes | None:
        """A whole line without its CR LF, or None (with `_dropping_line` set past `limit`).

        A bare LF also ends a line: lenient framing costs nothing and some clients send it."""
        i = self._buf.find(b"\n")
        if i == -1:
            if len(self._buf) > limit:
                self._dropping_line = True
                del self._buf[:-_TAIL]
            return None
        line = bytes(self._buf[:i])
        del self._buf[: i + 1]
        return line[:-1] if line.endswith(b"\r") else line

    def _raw_line(self) -> Event | None:
        if self._dropping_line:
            if self._take_line(_TAIL) is None:
                return None
            self._dropping_line = False
            return Rejected(None, "BAD", None, "Line too long")
        line = self._take_line(self.limits.max_line)
        return None if line is None else LineReceived(line)

    def _command_line(self) -> tuple[Event | None, bool]:
        """One step on command input: (event, whether any input was consumed)."""
        pending = self._pending
        if self._dropping_line:
            tail = self._take_line(_TAIL)
            if tail is None:
                return None, False
            self._dropping_line = False
            return self._after_line(tail, refused=True), True
        head = pending.lines[0] if pending.lines else bytes(self._buf[:256])
        line = self._take_line(self.limits.max_command - pending.used)
        if line is None:
            if self._dropping_line and not pending.discard:
                pending.discard = True
                return Rejected(read_tag(head), "BAD", "TOOBIG", "Command line too long"), True
            return None, False
        self._sync_waiting = False
        if not pending.lines and not pending.discard and not line.strip():
            return None, True  # an empty line between commands is ignored
        pending.used += len(line) + 2
        if pending.used > self.limits.max_command and not pending.discard:
            closing = self._after_line(line, refused=True)
            return closing or Rejected(read_tag(head), "BAD", "TOOBIG", "Command line too long"), True
        return self._after_line(line, refused=pending.discard), True

    def _after_line(self, line: bytes, refused: bool) -> Event | None:
        """A line ended: finish the command, or set up its literal."""
        pending = self._pending
        if not pending.lines:
            pending.append = _APPEND.match(line) is not None
        marker = literal_marker(line)
        if refused:
            pending.discard = True
            if marker is not None and not marker[1]:
                return self._skip_literal(
                    marker[0], read_tag(pending.lines[0] if pending.lines else line), None
                )
            self._pending = _Pending()
            return None
        if marker is None:
            pending.lines.append(line)
            self._pending = _Pending()
            return CommandReceived(RawCommand(tuple(pending.lines), tuple(pending.literals)))
        size, sync, _binary = marker
        pending.lines.append(line)
        tag = read_tag(pending.lines[0])
        refusal = self._refuse(size, sync, tag)
        if refusal is not None:
            pending.discard = True
            if sync:
                self._pending = _Pending()
                return refusal
            return self._skip_literal(size, tag, refusal)
        if pending.append:
            pending.append_used += size
        else:
            pending.used += size
        self._literal_left = size
        if size == 0:
            pending.literals.append(b"")
        if sync:
            self._sync_waiting = True
            return ContinuationNeeded(tag, size)
        return None

    def _refuse(self, size: int, sync: bool, tag: str | None) -> Rejected | None:
        limits = self.limits
        pending = self._pending
        if not sync and limits.max_nonsync is not None and size > limits.max_nonsync:
            # RFC 7888 §4: LITERAL- refuses larger non-synchronizing literals with BAD [TOOBIG].
            return Rejected(tag, "BAD", "TOOBIG", "Non-synchronizing literal too large")
        if pending.append:
            if pending.append_used + size > limits.max_append:
                # RFC 7889 §4: an APPEND over the limit fails with NO [TOOBIG].
                return Rejected(tag, "NO", "TOOBIG", "Message too large")
            return None
        if pending.used + size > limits.max_command:
            return Rejected(tag, "BAD", "TOOBIG", "Literal too large")
        return None

    def _skip_literal(self, size: int, tag: str | None, refusal: Rejected | None) -> Rejected | None:
        """Drop a refused non-synchronizing literal as it arrives, or give up on the
        connection when it is beyond `max_skip` (RFC 7888 §4 allows closing)."""
        if size > self.limits.max_skip:
            self._pending = _Pending()
            return Rejected(tag, "BAD", "TOOBIG", "Literal too large", close=True)
        self._skip_left = size
        return refusal
