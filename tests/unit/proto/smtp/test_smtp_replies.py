"""Reply values and their wire form (RFC 5321 §4.2, RFC 2034 §4)."""

from __future__ import annotations

from courriel.core import replies
from courriel.core.replies import Reply

from .conftest import parse_replies


def test_single_line_with_enhanced_code() -> None:
    assert replies.OK.encode() == b"250 2.0.0 OK\r\n"


def test_multi_line_reply_uses_dash_on_all_but_the_last_line() -> None:
    reply = Reply(250, None, "mx.example.com Hello\nPIPELINING\nSIZE 10")
    assert reply.encode() == b"250-mx.example.com Hello\r\n250-PIPELINING\r\n250 SIZE 10\r\n"


def test_multi_line_reply_repeats_the_enhanced_code() -> None:
    reply = Reply(550, "5.7.1", "first\nsecond")
    assert reply.encode() == b"550-5.7.1 first\r\n550 5.7.1 second\r\n"


def test_empty_text_keeps_the_space() -> None:
    assert Reply(334, None, "").encode() == b"334 \r\n"


def test_carriage_returns_in_text_cannot_break_the_framing() -> None:
    assert Reply(250, None, "a\r\nb").encode() == b"250-a\r\n250 b\r\n"


def test_classes() -> None:
    assert replies.OK.is_positive and not replies.OK.is_transient and not replies.OK.is_permanent
    assert replies.START_MAIL_INPUT.is_positive
    assert replies.TEMP_FAILURE.is_transient and not replies.TEMP_FAILURE.is_positive
    assert replies.AUTH_FAILED.is_permanent
    assert replies.TIMEOUT.closes and not replies.TEMP_FAILURE.closes


def test_the_constants_the_brief_names() -> None:
    expected = {
        "OK": (250, "2.0.0"),
        "BAD_SEQUENCE": (503, "5.5.1"),
        "TOO_MANY_RECIPIENTS": (452, "4.5.3"),
        "MESSAGE_TOO_BIG": (552, "5.3.4"),
        "LINE_TOO_LONG": (500, "5.5.2"),
        "AUTH_REQUIRED": (530, "5.7.0"),
        "ENCRYPTION_REQUIRED": (530, "5.7.0"),
        "AUTH_SUCCEEDED": (235, "2.7.0"),
        "AUTH_FAILED": (535, "5.7.8"),
        "TEMP_FAILURE": (451, "4.3.0"),
        "SERVICE_CLOSING": (421, "4.4.2"),
        "AUTH_ENCRYPTION_REQUIRED": (538, "5.7.11"),
        "PARAMS_UNRECOGNIZED": (555, "5.5.4"),
        "NO_VALID_RECIPIENTS": (554, "5.5.1"),
    }
    for name, (code, enhanced) in expected.items():
        reply = getattr(replies, name)
        assert (reply.code, reply.enhanced) == (code, enhanced), name
    assert replies.ENCRYPTION_REQUIRED.text == "Must issue a STARTTLS command first"


def test_every_final_reply_constant_has_an_enhanced_code_of_its_class() -> None:
    for name in dir(replies):
        reply = getattr(replies, name)
        if not isinstance(reply, Reply):
            continue
        if reply.code // 100 == 3:
            assert reply.enhanced is None, name
        else:
            assert reply.enhanced is not None and reply.enhanced[0] == str(reply.code)[0], name
        assert parse_replies(reply.encode()) == [reply], name
