"""Property tests: no input makes the reader or parser raise anything but ParseError, and the
MIME layer never raises on random bytes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from courriel.proto.imap.bodystructure import body_structure
from courriel.proto.imap.envelope import envelope
from courriel.proto.imap.errors import ParseError, SectionError
from courriel.proto.imap.fetchatt import Section
from courriel.proto.imap.grammar import parse_command
from courriel.proto.imap.mime import scan
from courriel.proto.imap.mutf7 import Mutf7Error, decode
from courriel.proto.imap.reader import CommandReader, CommandReceived, ReaderLimits
from courriel.proto.imap.search_text import searchable_text
from courriel.proto.imap.sections import binary_content, section_content

WORDS = [
    b"a1",
    b" ",
    b"UID",
    b"FETCH",
    b"SEARCH",
    b"STORE",
    b"LIST",
    b"SELECT",
    b"APPEND",
    b"LOGIN",
    b"(",
    b")",
    b"[",
    b"]",
    b"<",
    b">",
    b".",
    b"{3}\r\n",
    b"{2+}\r\n",
    b"~{1+}\r\n",
    b"\r\n",
    b'"',
    b"\\",
    b"*",
    b"%",
    b"1:*",
    b"$",
    b"BODY",
    b"BODY.PEEK",
    b"HEADER.FIELDS",
    b"MIME",
    b"TEXT",
    b"NOT",
    b"OR",
    b"RETURN",
    b"CHARSET",
    b"FLAGS",
    b"+FLAGS.SILENT",
    b"\\Seen",
    b"INBOX",
    b"NIL",
    b"ALL",
    b"7",
    b"0",
    b"\x00",
    b"\xff",
    b"QRESYNC",
    b"CHANGEDSINCE",
    b"MODSEQ",
    b"STATUS",
    b"SUBSCRIBED",
    b"1-Jan-2020",
    b"ID",
]

token_soup = st.lists(st.sampled_from(WORDS), max_size=40).map(b"".join)
any_bytes = st.binary(max_size=300)


def run(data: bytes) -> None:
    reader = CommandReader(ReaderLimits(max_command=2000, max_append=2000, max_skip=4000))
    reader.feed(data)
    for _ in range(len(data) + 5):
        event = reader.next_event()
        if event is None:
            return
        if isinstance(event, CommandReceived):
            try:
                parse_command(event.command)
            except ParseError:
                pass


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(token_soup, any_bytes))
def test_reader_and_parser_only_raise_parse_error(data: bytes) -> None:
    run(data)
    run(b"a1 " + data + b"\r\n")


@settings(max_examples=300)
@given(st.lists(st.sampled_from(WORDS), max_size=30).map(lambda ws: b"t FETCH 1 " + b"".join(ws) + b"\r\n"))
def test_fetch_soup(data: bytes) -> None:
    run(data)


MIME_WORDS = [
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: message/rfc822\r\n",
    b'Content-Type: text/plain; charset="utf-8"\r\n',
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"--b\r\n",
    b"--b--\r\n",
    b"\r\n",
    b"\n",
    b"From: a@b, (c) <d@e>; g: h@i;\r\n",
    b" folded\r\n",
    b"Subject: =?utf-8?q?x?=\r\n",
    b"body=\r\n",
    b"QUJD\r\n",
    b"\xff\x00",
    b'Content-Disposition: attachment; filename="x\r\n',
]


@settings(max_examples=300)
@given(st.one_of(st.lists(st.sampled_from(MIME_WORDS), max_size=30).map(b"".join), any_bytes))
def test_mime_layer_never_raises(data: bytes) -> None:
    root = scan(data)
    body_structure(data, True, root)
    body_structure(data, False, root)
    envelope(data, root.headers)
    searchable_text(data, root)
    for path in ((), (1,), (1, 1), (2, 1, 1)):
        for text in (None, "HEADER", "TEXT", "MIME"):
            if text == "MIME" and not path:
                continue
            section_content(data, root, Section(path, text))
        try:
            binary_content(data, root, path)
        except SectionError:
            pass


@given(st.text(max_size=30))
def test_mutf7_decode_only_raises_its_error(text: str) -> None:
    try:
        decode(text)
    except Mutf7Error:
        pass


def events_of(chunks: list[bytes]) -> list[object]:
    reader = CommandReader(ReaderLimits(max_command=40, max_append=60, max_skip=80))
    events: list[object] = []
    for chunk in chunks:
        reader.feed(chunk)
        for _ in range(len(chunk) + 5):
            event = reader.next_event()
            if event is None:
                break
            events.append(event)
    return events


@settings(max_examples=300)
@given(token_soup, st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_framing_does_not_depend_on_how_bytes_arrive(data: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert events_of(chunks) == events_of([data])
