"""Reader, parser and writer together, as the session engine will drive them (RFC 9051 §8)."""

from __future__ import annotations

from courriel.proto.imap import commands as c
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap import writer as w
from courriel.proto.imap.errors import ParseError
from courriel.proto.imap.grammar import parse_command
from courriel.proto.imap.reader import (
    CommandReader,
    CommandReceived,
    ContinuationNeeded,
    LineReceived,
    Rejected,
)


class MiniEngine:
    """Just enough glue to turn events into replies: the real engine comes later."""

    def __init__(self) -> None:
        self.reader = CommandReader()
        self.commands: list[c.Command] = []

    def receive(self, data: bytes) -> bytes:
        self.reader.feed(data)
        out: list[bytes] = []
        for _ in range(100):
            event = self.reader.next_event()
            if event is None:
                break
            if isinstance(event, ContinuationNeeded):
                out.append(w.continuation())
            elif isinstance(event, Rejected):
                out.append(
                    w.tagged(event.tag, event.status, event.text, event.code)
                    if event.tag
                    else w.untagged_status("BAD", event.text)
                )
            elif isinstance(event, LineReceived):
                self.reader.line_mode(False)
                out.append(
                    w.tagged("i1", "OK", "IDLE terminated")
                    if event.line.upper() == b"DONE"
                    else w.untagged_status("BAD", "Expected DONE")
                )
            elif isinstance(event, CommandReceived):
                out.append(self._run(event))
        return b"".join(out)

    def _run(self, event: CommandReceived) -> bytes:
        try:
            cmd = parse_command(event.command)
        except ParseError as exc:
            if exc.tag is None:
                return w.untagged_status("BAD", exc.text)
            return w.tagged(exc.tag, exc.status, exc.text, exc.code)
        self.commands.append(cmd)
        if isinstance(cmd, c.Idle):
            self.reader.line_mode(True)
            return w.continuation("idling")
        if isinstance(cmd, c.Append):
            return w.tagged(cmd.tag, "OK", "APPEND completed", rc.appenduid(38505, [3955]))
        return w.tagged(cmd.tag, "OK", "done")


def test_append_with_synchronizing_literal() -> None:
    engine = MiniEngine()
    assert engine.receive(b"A003 APPEND saved-messages (\\Seen) {23}\r\n") == b"+ Ready for literal data\r\n"
    assert (
        engine.receive(b"Subject: hi\r\n\r\nHello!\r\n\r\n")
        == b"A003 OK [APPENDUID 38505 3955] APPEND completed\r\n"
    )
    append = engine.commands[-1]
    assert isinstance(append, c.Append) and append.message == b"Subject: hi\r\n\r\nHello!\r\n"


def test_idle_done_and_errors_in_one_packet() -> None:
    engine = MiniEngine()
    replies = engine.receive(b"i1 IDLE\r\nDONE\r\nb1 FETCH 1 (BOGUS)\r\nNOTAG\r\nc1 NOOP\r\n")
    assert replies == (
        b"+ idling\r\n"
        b"i1 OK IDLE terminated\r\n"
        b"b1 BAD Unknown fetch item BOGUS\r\n"
        b"* BAD Missing or invalid tag\r\n"
        b"c1 OK done\r\n"
    )


def test_literal_plus_too_big_then_next_command() -> None:
    engine = MiniEngine()
    engine.reader.limits = type(engine.reader.limits)(max_command=64)
    replies = engine.receive(b"a1 LOGIN {100+}\r\n" + b"x" * 100 + b" pw\r\na2 NOOP\r\n")
    assert replies == b"a1 BAD [TOOBIG] Literal too large\r\na2 OK done\r\n"
