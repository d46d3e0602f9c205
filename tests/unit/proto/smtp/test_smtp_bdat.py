"""BDAT (RFC 3030 CHUNKING and BINARYMIME)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from courriel.core.replies import (
    BAD_ARGUMENTS,
    BAD_SEQUENCE,
    DATA_BDAT_MIXED,
    MESSAGE_TOO_BIG,
    NEED_MAIL,
    NO_VALID_RECIPIENTS,
    NOT_IMPLEMENTED,
    OK,
    QUEUED,
    RECIPIENT_OK,
    SENDER_OK,
    TEXT_LINE_TOO_LONG,
    TOO_MANY_ERRORS,
    Reply,
)
from courriel.proto.smtp import DecideData

from .conftest import Client, FakePolicy

Factory = Callable[..., Client]
ENVELOPE = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"


def received(size: int) -> Reply:
    return Reply(250, "2.0.0", f"{size} octets received")


def test_chunks_make_one_message(ready: Client) -> None:
    assert ready.send(ENVELOPE) == [SENDER_OK, RECIPIENT_OK]
    assert ready.send(b"BDAT 5\r\nab\r\n.") == [received(5)]
    assert ready.send(b"BDAT 7 LAST\r\n\r\n.\r\nxy") == [QUEUED]
    assert ready.policy.last(DecideData).message == b"ab\r\n.\r\n.\r\nxy"  # no dot handling
    assert ready.send(b"NOOP\r\n") == [OK]


def test_pipelined_chunks_split_anywhere(ready: Client) -> None:
    wire = ENVELOPE + b"BDAT 3\r\nabcBDAT 0\r\nBDAT 4 LAST\r\nd\x00\xffeNOOP\r\n"
    replies = []
    for i in range(len(wire)):
        replies += ready.send(wire[i : i + 1])
    assert replies == [SENDER_OK, RECIPIENT_OK, received(3), received(0), QUEUED, OK]
    assert ready.policy.last(DecideData).message == b"abcd\x00\xffe"


def test_bdat_zero_last(ready: Client) -> None:
    ready.send(ENVELOPE)
    assert ready.send(b"BDAT 3\r\nabcBDAT 0 LAST\r\n") == [received(3), QUEUED]
    assert ready.policy.last(DecideData).message == b"abc"


def test_chunk_without_mail_is_read_and_discarded(ready: Client) -> None:
    # The chunk's octets must not be taken for commands.
    assert ready.send(b"BDAT 6\r\nQUIT\r\n") == [NEED_MAIL]
    assert not ready.closed
    assert ready.send(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n") == [NEED_MAIL, OK]


def test_chunk_without_recipients(client: Factory) -> None:
    c = client(FakePolicy(rejected_rcpts={"c@d.example"}))
    c.ehlo()
    replies = c.send(ENVELOPE + b"BDAT 2\r\nhiBDAT 2 LAST\r\nyo")
    assert replies[2:] == [NO_VALID_RECIPIENTS, NO_VALID_RECIPIENTS]
    assert c.send(b"MAIL FROM:<a@b.example>\r\n") == [SENDER_OK]


def test_later_chunks_of_a_failed_series_are_not_counted_as_errors(client: Factory) -> None:
    c = client(max_protocol_errors=2)
    c.ehlo()
    assert c.send(b"BDAT 1\r\nxBDAT 1\r\nxBDAT 1\r\nxBDAT 1 LAST\r\nx") == [NEED_MAIL] * 4
    assert not c.closed
    assert c.send(b"BDAT 1\r\nx") == [NEED_MAIL, TOO_MANY_ERRORS]


def test_data_after_bdat_is_refused(ready: Client) -> None:
    ready.send(ENVELOPE + b"BDAT 2\r\nhi")
    assert ready.send(b"DATA\r\n") == [DATA_BDAT_MIXED]
    assert ready.send(b"RCPT TO:<e@d.example>\r\n") == [BAD_SEQUENCE]
    assert ready.send(b"BDAT 1 LAST\r\n!") == [QUEUED]
    assert ready.policy.last(DecideData).message == b"hi!"


@pytest.mark.parametrize(
    "line", [b"BDAT", b"BDAT x", b"BDAT -1", b"BDAT 1 FIRST", b"BDAT 1 LAST x", b"BDAT " + b"9" * 21]
)
def test_bdat_syntax(ready: Client, line: bytes) -> None:
    ready.send(ENVELOPE)
    assert ready.send(line + b"\r\n") == [BAD_ARGUMENTS]


def test_bdat_is_case_insensitive(ready: Client) -> None:
    ready.send(ENVELOPE)
    assert ready.send(b"bdat 1 last\r\nz") == [QUEUED]


def test_oversized_chunks(client: Factory) -> None:
    c = client(max_message_size=100)
    c.ehlo()
    c.send(ENVELOPE)
    wire = b"BDAT 60\r\n" + b"a" * 60 + b"BDAT 60\r\n" + b"b" * 60 + b"BDAT 10 LAST\r\n" + b"c" * 10
    assert c.send(wire) == [received(60), MESSAGE_TOO_BIG, MESSAGE_TOO_BIG]
    assert not any(isinstance(d, DecideData) for d in c.policy.seen)
    assert c.send(ENVELOPE + b"BDAT 100 LAST\r\n" + b"d" * 100) == [SENDER_OK, RECIPIENT_OK, QUEUED]


def test_huge_declared_chunk_is_discarded_without_buffering(client: Factory) -> None:
    c = client(max_message_size=1000)
    c.ehlo()
    c.send(ENVELOPE)
    assert c.send(b"BDAT 99999999999999999999\r\n" + b"x" * 65536) == []
    assert len(c.session._input) == 0
    assert c.eof() == []


def test_chunking_disabled(client: Factory) -> None:
    c = client(chunking=False)
    c.ehlo()
    assert c.send(b"BDAT 1 LAST\r\n") == [NOT_IMPLEMENTED]


def test_binarymime_skips_the_line_check(client: Factory) -> None:
    c = client(max_text_line=10)
    c.ehlo()
    c.send(b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<c@d.example>\r\n")
    assert c.send(b"BDAT 20 LAST\r\n" + b"z" * 20) == [QUEUED]
    c.send(ENVELOPE)
    assert c.send(b"BDAT 20 LAST\r\n" + b"z" * 20) == [TEXT_LINE_TOO_LONG]
