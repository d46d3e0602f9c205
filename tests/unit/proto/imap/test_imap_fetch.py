"""FETCH items (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162 modifiers) parsed and named back."""

from __future__ import annotations

import pytest

from courriel.proto.imap import commands as c
from courriel.proto.imap.errors import ParseError
from courriel.proto.imap.fetchatt import MACROS, FetchAtt, Section
from courriel.proto.imap.sequence import STAR, SequenceSet

from .conftest import Parse


def items(parse: Parse, text: bytes) -> tuple[FetchAtt, ...]:
    cmd = parse(b"a FETCH 1 " + text)
    assert isinstance(cmd, c.Fetch)
    return cmd.items


@pytest.mark.parametrize("macro", ["ALL", "FAST", "FULL", "all"])
def test_macros_expand(parse: Parse, macro: str) -> None:
    assert items(parse, macro.encode()) == MACROS[macro.upper()]


def test_simple_items(parse: Parse) -> None:
    got = items(
        parse,
        b"(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY UID MODSEQ RFC822 RFC822.HEADER RFC822.TEXT)",
    )
    assert [i.name for i in got] == [
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODYSTRUCTURE",
        "BODY",
        "UID",
        "MODSEQ",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
    ]
    assert all(i.section is None for i in got)


@pytest.mark.parametrize(
    ("text", "att", "name"),
    [
        (b"BODY[]", FetchAtt("BODY", Section()), "BODY[]"),
        (b"BODY.PEEK[]<0.1024>", FetchAtt("BODY", Section(), (0, 1024), True), "BODY[]<0>"),
        (b"body[header]", FetchAtt("BODY", Section((), "HEADER")), "BODY[HEADER]"),
        (b"BODY[TEXT]<100.5>", FetchAtt("BODY", Section((), "TEXT"), (100, 5)), "BODY[TEXT]<100>"),
        (b"BODY[1.2.3]", FetchAtt("BODY", Section((1, 2, 3))), "BODY[1.2.3]"),
        (b"BODY[4.2.MIME]", FetchAtt("BODY", Section((4, 2), "MIME")), "BODY[4.2.MIME]"),
        (b"BODY[3.HEADER]", FetchAtt("BODY", Section((3,), "HEADER")), "BODY[3.HEADER]"),
        (
            b'BODY.PEEK[HEADER.FIELDS (Date From "X-Odd Name")]',
            FetchAtt("BODY", Section((), "HEADER.FIELDS", ("DATE", "FROM", "X-ODD NAME")), peek=True),
            'BODY[HEADER.FIELDS (DATE FROM "X-ODD NAME")]',
        ),
        (
            b"BODY[2.HEADER.FIELDS.NOT (Received)]",
            FetchAtt("BODY", Section((2,), "HEADER.FIELDS.NOT", ("RECEIVED",))),
            "BODY[2.HEADER.FIELDS.NOT (RECEIVED)]",
        ),
        (b"BINARY[1]", FetchAtt("BINARY", Section((1,))), "BINARY[1]"),
        (b"BINARY.PEEK[1.2]<0.10>", FetchAtt("BINARY", Section((1, 2)), (0, 10), True), "BINARY[1.2]<0>"),
        (b"BINARY.SIZE[2]", FetchAtt("BINARY.SIZE", Section((2,))), "BINARY.SIZE[2]"),
        (b"BINARY[]", FetchAtt("BINARY", Section()), "BINARY[]"),
    ],
)
def test_section_items(parse: Parse, text: bytes, att: FetchAtt, name: str) -> None:
    (got,) = items(parse, text)
    assert got == att
    assert got.response_name() == name


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        (b"BODY[]", True),
        (b"BODY.PEEK[]", False),
        (b"BINARY[1]", True),
        (b"BINARY.PEEK[1]", False),
        (b"BINARY.SIZE[1]", False),
        (b"RFC822", True),
        (b"RFC822.TEXT", True),
        (b"RFC822.HEADER", False),
        (b"FLAGS", False),
    ],
)
def test_sets_seen(parse: Parse, text: bytes, seen: bool) -> None:
    assert items(parse, text)[0].sets_seen is seen


@pytest.mark.parametrize(
    "text",
    [
        b"BODY[1.]",
        b"BODY[HEADER.FIELDS ()]",
        b"BINARY[TEXT]",
        b"BINARY.SIZE[1]<0.2>",
        b"BODY.PEEK",
        b"BODY[1]<1>",
        b"BODY[]<0.0>",
        b"FLAGZ",
        b"(FLAGS ALL)",
        b"BINARY.SIZE.PEEK[1]",
        b"BODY[0]",
        b"BODY[HEADERS]",
    ],
)
def test_bad_items(parse: Parse, text: bytes) -> None:
    with pytest.raises(ParseError):
        parse(b"a FETCH 1 " + text)


def test_modifiers(parse: Parse) -> None:
    cmd = parse(b"a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)")
    assert cmd == c.Fetch("a", True, SequenceSet(((300, 500),)), (FetchAtt("FLAGS"),), 12345, True)
    cmd = parse(b"a FETCH 1:* (UID FLAGS) (CHANGEDSINCE 7)")
    assert isinstance(cmd, c.Fetch) and cmd.changedsince == 7 and cmd.seqset == SequenceSet(((1, STAR),))
    with pytest.raises(ParseError, match="VANISHED"):
        parse(b"a UID FETCH 1 FLAGS (VANISHED)")
    with pytest.raises(ParseError, match="modifier"):
        parse(b"a FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)")
