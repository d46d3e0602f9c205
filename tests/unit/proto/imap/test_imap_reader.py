"""Command framing: literals (RFC 9051 §4.3, RFC 7888 LITERAL+/LITERAL-, RFC 3516 literal8),
limits with [TOOBIG], and the raw line mode used by AUTHENTICATE and IDLE."""

from __future__ import annotations

from courriel.proto.imap.reader import (
    CommandReader,
    CommandReceived,
    ContinuationNeeded,
    Event,
    LineReceived,
    RawCommand,
    ReaderLimits,
    Rejected,
    literal_marker,
)


def drain(reader: CommandReader, data: bytes = b"") -> list[Event]:
    reader.feed(data)
    events: list[Event] = []
    for _ in range(1000):  # bounded: a reader never yields more events than input lines
        event = reader.next_event()
        if event is None:
            return events
        events.append(event)
    raise AssertionError("reader did not stop")


def commands(events: list[Event]) -> list[RawCommand]:
    return [e.command for e in events if isinstance(e, CommandReceived)]


def test_simple_command_and_pipelining() -> None:
    events = drain(CommandReader(), b"a1 NOOP\r\na2 CAPABILITY\r\n")
    assert commands(events) == [RawCommand((b"a1 NOOP",)), RawCommand((b"a2 CAPABILITY",))]


def test_byte_by_byte_feeding() -> None:
    reader = CommandReader()
    events: list[Event] = []
    for byte in b"a1 LOGIN {3+}\r\nbob {2+}\r\npw\r\n":
        events += drain(reader, bytes([byte]))
    assert commands(events) == [RawCommand((b"a1 LOGIN {3+}", b" {2+}", b""), (b"bob", b"pw"))]


def test_synchronizing_literal_asks_for_continuation() -> None:
    reader = CommandReader()
    assert drain(reader, b"a1 LOGIN {3}\r\n") == [ContinuationNeeded("a1", 3)]
    assert drain(reader, b"bo") == []
    events = drain(reader, b"b {2}\r\n")
    assert events == [ContinuationNeeded("a1", 2)]
    events = drain(reader, b"pw\r\n")
    assert commands(events) == [RawCommand((b"a1 LOGIN {3}", b" {2}", b""), (b"bob", b"pw"))]


def test_literal_may_hold_crlf_and_braces() -> None:
    events = drain(CommandReader(), b"a APPEND INBOX {12+}\r\nx\r\n{3}\r\nabcd\r\n")
    assert commands(events)[0].literals == (b"x\r\n{3}\r\nabcd",)


def test_literal8_marker() -> None:
    events = drain(CommandReader(), b"a APPEND INBOX ~{3+}\r\n\x00\x01\x02\r\n")
    assert commands(events)[0].literals == (b"\x00\x01\x02",)
    assert literal_marker(b"a APPEND x ~{10}") == (10, True, True)


def test_braces_inside_quotes_are_not_literals() -> None:
    assert literal_marker(b'a LOGIN "{3}"') is None
    assert literal_marker(b'a LOGIN "x\\"{3}"') is None
    assert literal_marker(b'a LOGIN "x\\\\" {3}') == (3, True, False)
    events = drain(CommandReader(), b'a SELECT "{5}"\r\n')
    assert commands(events) == [RawCommand((b'a SELECT "{5}"',))]


def test_zero_length_literal() -> None:
    reader = CommandReader()
    assert drain(reader, b"a SELECT {0}\r\n") == [ContinuationNeeded("a", 0)]
    assert commands(drain(reader, b"\r\n")) == [RawCommand((b"a SELECT {0}", b""), (b"",))]


def test_bare_lf_and_empty_lines() -> None:
    events = drain(CommandReader(), b"\r\n\na NOOP\nb NOOP\r\n")
    assert commands(events) == [RawCommand((b"a NOOP",)), RawCommand((b"b NOOP",))]


def test_too_big_synchronizing_literal_is_refused_without_continuation() -> None:
    reader = CommandReader(ReaderLimits(max_command=100))
    events = drain(reader, b"a1 LOGIN {500}\r\n")
    assert events == [Rejected("a1", "BAD", "TOOBIG", "Literal too large")]
    # RFC 9051 §7.5: the client sends nothing more for that command; the next one is fine.
    assert commands(drain(reader, b"a2 NOOP\r\n")) == [RawCommand((b"a2 NOOP",))]


def test_too_big_non_synchronizing_literal_is_skipped_not_executed() -> None:
    reader = CommandReader(ReaderLimits(max_command=100))
    payload = b"x\r\na9 DELETE INBOX\r\n" * 20
    events = drain(reader, b"a1 LOGIN {%d+}\r\n" % len(payload) + payload + b" rest\r\na2 NOOP\r\n")
    assert events[0] == Rejected("a1", "BAD", "TOOBIG", "Literal too large")
    assert commands(events) == [RawCommand((b"a2 NOOP",))]


def test_literal_minus_limit() -> None:
    reader = CommandReader(ReaderLimits(max_nonsync=4096))
    big = b"y" * 5000
    events = drain(reader, b"a APPEND INBOX {5000+}\r\n" + big + b"\r\nb NOOP\r\n")
    assert events[0] == Rejected("a", "BAD", "TOOBIG", "Non-synchronizing literal too large")
    assert commands(events) == [RawCommand((b"b NOOP",))]
    # A synchronizing literal of the same size is fine.
    assert drain(reader, b"c APPEND INBOX {5000}\r\n") == [ContinuationNeeded("c", 5000)]


def test_append_limit_is_no_toobig() -> None:
    reader = CommandReader(ReaderLimits(max_append=1000))
    assert drain(reader, b"a APPEND INBOX (\\Seen) {2000}\r\n") == [
        Rejected("a", "NO", "TOOBIG", "Message too large")
    ]
    msg = b"m" * 900
    events = drain(reader, b"b APPEND INBOX {900+}\r\n" + msg + b"\r\n")
    assert commands(events)[0].literals == (msg,)


def test_append_literal_does_not_count_against_command_length() -> None:
    reader = CommandReader(ReaderLimits(max_command=200, max_append=10_000))
    msg = b"z" * 5000
    assert commands(drain(reader, b"a APPEND INBOX {5000+}\r\n" + msg + b"\r\n"))[0].literals == (msg,)


def test_too_long_line_is_rejected_and_dropped() -> None:
    reader = CommandReader(ReaderLimits(max_command=64))
    events = drain(reader, b"t1 SEARCH " + b"X" * 100)
    assert events == [Rejected("t1", "BAD", "TOOBIG", "Command line too long")]
    events = drain(reader, b"Y" * 10_000 + b"\r\nt2 NOOP\r\n")
    assert commands(events) == [RawCommand((b"t2 NOOP",))]
    assert len(reader._buf) == 0


def test_too_long_line_ending_in_nonsync_literal_skips_it() -> None:
    reader = CommandReader(ReaderLimits(max_command=64))
    events = drain(reader, b"t1 SEARCH " + b"X" * 100 + b" {6+}\r\nt9 X\r\n rest\r\nt2 NOOP\r\n")
    assert events[0] == Rejected("t1", "BAD", "TOOBIG", "Command line too long")
    assert commands(events) == [RawCommand((b"t2 NOOP",))]
    # The same when the long line arrives in pieces and is dropped as it comes.
    events = drain(reader, b"t3 SEARCH " + b"X" * 100)
    events += drain(reader, b"X" * 100)
    events += drain(reader, b" {6+}\r\nt9 X\r\n rest\r\nt4 NOOP\r\n")
    assert events[0] == Rejected("t3", "BAD", "TOOBIG", "Command line too long")
    assert commands(events) == [RawCommand((b"t4 NOOP",))]


def test_absurd_literal_asks_to_close() -> None:
    reader = CommandReader(ReaderLimits(max_skip=1000))
    events = drain(reader, b"a LOGIN {99999999999999999999999+}\r\n")
    assert len(events) == 1 and isinstance(events[0], Rejected) and events[0].close


def test_abandon_refuses_a_synchronizing_literal() -> None:
    reader = CommandReader()
    assert drain(reader, b"a APPEND Nowhere {10}\r\n") == [ContinuationNeeded("a", 10)]
    reader.abandon()  # the engine answered "a NO [TRYCREATE]" instead of "+"
    assert commands(drain(reader, b"b NOOP\r\n")) == [RawCommand((b"b NOOP",))]


def test_line_mode_for_idle_done_pipelined() -> None:
    reader = CommandReader()
    reader.feed(b"a IDLE\r\nDONE\r\nb NOOP\r\n")
    first = reader.next_event()
    assert first == CommandReceived(RawCommand((b"a IDLE",)))
    reader.line_mode(True)
    assert reader.next_event() == LineReceived(b"DONE")
    reader.line_mode(False)
    assert reader.next_event() == CommandReceived(RawCommand((b"b NOOP",)))
    assert reader.next_event() is None


def test_line_mode_too_long() -> None:
    reader = CommandReader(ReaderLimits(max_line=50))
    reader.line_mode(True)
    assert drain(reader, b"A" * 200) == []
    assert drain(reader, b"B" * 10 + b"\r\n=\r\n") == [
        Rejected(None, "BAD", None, "Line too long"),
        LineReceived(b"="),
    ]


def test_tag_of_rejected_command_without_tag() -> None:
    reader = CommandReader(ReaderLimits(max_command=20))
    events = drain(reader, b"+" * 50 + b"\r\n")
    assert events == [Rejected(None, "BAD", "TOOBIG", "Command line too long")]


def test_append_literals_are_bounded_together() -> None:
    reader = CommandReader(ReaderLimits(max_append=1000))
    events = drain(reader, b"a APPEND INBOX {600+}\r\n" + b"m" * 600 + b" {600}\r\n")
    assert events == [Rejected("a", "NO", "TOOBIG", "Message too large")]
    assert commands(drain(reader, b"b NOOP\r\n")) == [RawCommand((b"b NOOP",))]
