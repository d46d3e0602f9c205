"""Decoded text for SEARCH (RFC 9051 §6.4.4): MIME-decoded, charset-decoded, case-folded."""

from __future__ import annotations

from pathlib import Path

from courriel.proto.imap.search_text import (
    decode_header_value,
    header_matches,
    normalise,
    searchable_text,
    text_matches,
)

MESSAGES = Path(__file__).parent / "messages"


def text_of(name: str) -> tuple[str, str]:
    return searchable_text((MESSAGES / name).read_bytes())


def test_quoted_printable_utf8_and_html_are_decoded() -> None:
    headers, body = text_of("alternative.eml")
    assert text_matches("café demain", body)
    assert text_matches("SOCIÉTÉ GÉNÉRALE", body)
    assert not text_matches("<b>", body)  # tags stripped from text/html
    assert not text_matches("nbsp", body)  # entities decoded
    assert not text_matches("epilogue", body)  # outside every part
    assert header_matches(headers, "subject", "café demain")  # RFC 2047 B
    assert header_matches(headers, "from", "andré")  # RFC 2047 Q
    assert not header_matches(headers, "to", "andré")


def test_latin1_quoted_printable_and_attachments_skipped() -> None:
    _, body = text_of("binary.eml")
    assert text_matches("grüße aus köln", body)
    assert text_matches("soft break", body)  # soft line break joined
    assert "\x00" not in body  # the octet-stream part is not text


def test_nested_message_text_and_headers_are_body_text() -> None:
    headers, body = text_of("nested.eml")
    assert text_matches("forwarding this", body)
    assert text_matches("lunch?", body)
    assert text_matches("alice", body)  # the attached message's From
    assert header_matches(headers, "subject", "fwd: lunch")
    assert not header_matches(headers, "subject", "forwarding")


def test_header_key_semantics() -> None:
    headers, _ = text_of("simple.eml")
    assert header_matches(headers, "Subject", "lunch on friday")  # unfolded, case-insensitive
    assert header_matches(headers, "message-id", "")  # empty value: the field exists
    assert not header_matches(headers, "x-mailer", "")
    assert header_matches(headers, "cc", "EVE@example.com")


def test_base64_text_part() -> None:
    msg = (
        b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"w4ljb2xlIG1hdGVybmVsbGU=\r\n"
    )
    _, body = searchable_text(msg)
    assert body == "école maternelle"


def test_unknown_charset_and_broken_words_do_not_raise() -> None:
    msg = b"Subject: =?x-unknown?q?abc?= =?utf-8?b?###?=\r\nContent-Type: text/plain; charset=x-nope\r\n\r\nhi\xff\r\n"
    headers, body = searchable_text(msg)
    assert body.startswith("hi")
    assert header_matches(headers, "subject", "")


def test_normalise_and_decode() -> None:
    assert normalise("  Straße\r\n  X ") == "strasse x"
    assert decode_header_value(b"=?ISO-8859-1?Q?Andr=E9?= Pirard") == "André Pirard"
