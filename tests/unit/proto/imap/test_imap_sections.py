"""BODY[section]<partial> and BINARY[section] (RFC 9051 §6.4.5, RFC 3516); the expected bytes
match what Dovecot 2.3 returns for the same files."""

from __future__ import annotations

from pathlib import Path

import pytest

from courriel.proto.imap.errors import SectionError
from courriel.proto.imap.fetchatt import Section
from courriel.proto.imap.mime import header_block_end, scan
from courriel.proto.imap.sections import (
    binary_content,
    decode_base64,
    find_part,
    is_root_header,
    partial,
    root_header_content,
    section_content,
)

MESSAGES = Path(__file__).parent / "messages"


def fetch(name: str, section: Section) -> bytes:
    data = (MESSAGES / name).read_bytes()
    return section_content(data, scan(data), section)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (Section((1,), "MIME"), b"Content-Type: text/plain\r\n\r\n"),
        (Section((2,), "HEADER.FIELDS", ("SUBJECT",)), b"Subject: Lunch on Friday?\r\n\r\n"),
        (Section((2, 2, 1)), b'<p>Lunch?<img src="cid:dot"></p>'),
        (
            Section((2,), "MIME"),
            b"Content-Type: message/rfc822\r\nContent-Description: forwarded message\r\n\r\n",
        ),
        (Section((2, 1)), b"Lunch?"),
        (
            Section((2, 2, 2), "MIME"),
            b"Content-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <dot>\r\n"
            b"Content-Disposition: inline\r\n\r\n",
        ),
        (Section((1,), "HEADER.FIELDS.NOT", ("CONTENT-TYPE",)), b""),  # part 1 is not a message
        (Section((9,)), b""),
        (Section((1, 1)), b""),
        (Section((2, 2, 2, 1)), b""),
    ],
)
def test_nested_sections(section: Section, expected: bytes) -> None:
    assert fetch("nested.eml", section) == expected


def test_message_and_rfc822_part_text() -> None:
    data = (MESSAGES / "nested.eml").read_bytes()
    root = scan(data)
    inner = section_content(data, root, Section((2,)))
    assert inner.startswith(b"From: Alice") and inner.endswith(b"--inner--\r\n")
    assert len(inner) == 633  # the octet count in BODYSTRUCTURE
    header = section_content(data, root, Section((2,), "HEADER"))
    assert header.startswith(b"From: Alice") and header.endswith(b"boundary=inner\r\n\r\n")
    assert section_content(data, root, Section((2,), "TEXT")) == inner[len(header) :]
    assert section_content(data, root, Section()) == data


def test_top_level_header_fields_keep_message_order_and_folding() -> None:
    got = fetch("simple.eml", Section((), "HEADER.FIELDS", ("TO", "SUBJECT")))
    assert got == b"Subject: Lunch on\r\n Friday?\r\nTo: bob@example.com, Carol <carol@example.net>\r\n\r\n"
    everything_else = fetch("simple.eml", Section((), "HEADER.FIELDS.NOT", ("TO", "SUBJECT", "CC")))
    assert b"Subject" not in everything_else and everything_else.startswith(b"Return-Path:")
    assert everything_else.endswith(b"CHARSET=US-ASCII\r\n\r\n")


def test_single_part_message_is_part_one() -> None:
    data = (MESSAGES / "simple.eml").read_bytes()
    root = scan(data)
    assert find_part(root, (1,)) is root
    assert section_content(data, root, Section((1,))) == section_content(data, root, Section((), "TEXT"))
    assert section_content(data, root, Section((1,), "MIME")) == section_content(
        data, root, Section((), "HEADER")
    )
    assert section_content(data, root, Section((1,), "HEADER")) == b""


def test_header_only_message() -> None:
    assert fetch("headeronly.eml", Section((), "HEADER")) == b"From: a@example.com\r\nSubject: only headers"
    assert fetch("headeronly.eml", Section((), "TEXT")) == b""
    assert fetch("headeronly.eml", Section((1,))) == b""
    assert fetch("headeronly.eml", Section((), "HEADER.FIELDS", ("SUBJECT",))) == b"Subject: only headers"


def test_broken_multipart_parts() -> None:
    assert fetch("broken.eml", Section((1,))) == b"part one"
    assert fetch("broken.eml", Section((2,))) == b""  # header without blank line
    assert fetch("broken.eml", Section((3,))) == b"aGVsbG8gd29ybGQ=\r\n"  # no close delimiter
    assert fetch("noboundary.eml", Section((1,))) == b""
    assert fetch("noboundary.eml", Section((), "TEXT")) == b"just text\r\n"


def test_partial() -> None:
    assert partial(b"0123456789", (2, 3)) == b"234"
    assert partial(b"0123456789", (8, 100)) == b"89"
    assert partial(b"0123456789", (50, 1)) == b""
    assert partial(b"abc", None) == b"abc"


def test_binary_decoding() -> None:
    data = (MESSAGES / "binary.eml").read_bytes()
    root = scan(data)
    assert binary_content(data, root, (1,)) == "Grüße aus Köln, soft break and = sign".encode("latin-1")
    assert binary_content(data, root, (2,)) == bytes(range(16))
    assert binary_content(data, root, ()) == data
    assert binary_content(data, root, (7,)) == b""
    with pytest.raises(SectionError) as info:
        binary_content(data, root, (3,))
    assert info.value.code == "UNKNOWN-CTE"
    alt = (MESSAGES / "alternative.eml").read_bytes()
    assert binary_content(alt, scan(alt), (1,)) == "Café demain à 9h ?\r\nSociété générale".encode()


def test_lenient_base64() -> None:
    assert decode_base64(b"aGVs\r\nbG8=\r\n") == b"hello"
    assert decode_base64(b"aGVsbG8") == b"hello"  # missing padding
    assert decode_base64(b"aGVsbG8gd29ybGQ*!\r\n") == b"hello world"
    assert decode_base64(b"aGVsbG8gd") == b"hello "  # a lone sextet cannot make a byte


@pytest.mark.parametrize("name", sorted(p.name for p in MESSAGES.glob("*.eml")))
@pytest.mark.parametrize(
    "section",
    [
        Section((), "HEADER"),
        Section((), "HEADER.FIELDS", ("SUBJECT", "FROM", "X-NONE")),
        Section((), "HEADER.FIELDS.NOT", ("CONTENT-TYPE", "SUBJECT")),
    ],
)
def test_root_header_without_a_scan_is_the_scanned_answer(name: str, section: Section) -> None:
    """FETCH of header sections skips the MIME scan (a message list's fetch): same bytes."""
    data = (MESSAGES / name).read_bytes()
    assert is_root_header(section)
    assert root_header_content(data, section) == section_content(data, scan(data), section)
    for cut in (b"\r\n\r\n", b"\n\n"):  # and without a blank line at all, or with bare LFs
        variant = data.split(cut, 1)[0] if cut in data else data.replace(b"\r\n", b"\n")
        assert root_header_content(variant, section) == section_content(variant, scan(variant), section)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"A: 1\r\nB: 2\r\n\r\nbody\n\nmore\r\n", (12, 14)),  # an LF blank line in the body
        (b"A: 1\nB: 2\n\nbody\r\n\r\n", (10, 11)),  # LF-only header, CRLF later
        (b"A: 1\r\nB: 2\n\nbody\r\n\r\nx", (11, 12)),  # the first blank line wins
        (b"A: 1\r\nB: 2\r\n", (12, 12)),  # no body
        (b"\r\nbody", (0, 2)),
    ],
)
def test_header_block_end_finds_the_first_blank_line(data: bytes, expected: tuple[int, int]) -> None:
    assert header_block_end(data, 0, len(data)) == expected
