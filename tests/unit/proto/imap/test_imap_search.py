"""SEARCH criteria and RETURN options (RFC 9051 §6.4.4, RFC 4731, RFC 5182, RFC 7162 §3.1.5)."""

from __future__ import annotations

from datetime import date

import pytest

from courriel.proto.imap import commands as c
from courriel.proto.imap.errors import ParseError
from courriel.proto.imap.searchkeys import (
    AllKey,
    AndKey,
    DateKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    NotKey,
    OrKey,
    SearchKey,
    SeqKey,
    SizeKey,
    TextKey,
)
from courriel.proto.imap.sequence import STAR, SequenceSet

from .conftest import Parse

SEEN, UNSEEN = FlagKey("\\Seen", True), FlagKey("\\Seen", False)


def key(parse: Parse, text: bytes) -> SearchKey:
    cmd = parse(b"a SEARCH " + text)
    assert isinstance(cmd, c.Search)
    return cmd.key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"ALL", AllKey()),
        (b"ANSWERED", FlagKey("\\Answered", True)),
        (b"UNANSWERED", FlagKey("\\Answered", False)),
        (b"DELETED", FlagKey("\\Deleted", True)),
        (b"UNDELETED", FlagKey("\\Deleted", False)),
        (b"DRAFT", FlagKey("\\Draft", True)),
        (b"UNDRAFT", FlagKey("\\Draft", False)),
        (b"FLAGGED", FlagKey("\\Flagged", True)),
        (b"UNFLAGGED", FlagKey("\\Flagged", False)),
        (b"SEEN", SEEN),
        (b"unseen", UNSEEN),
        (b"RECENT", FlagKey("\\Recent", True)),
        (b"OLD", FlagKey("\\Recent", False)),
        (b"NEW", AndKey((FlagKey("\\Recent", True), UNSEEN))),
        (b"KEYWORD $Forwarded", FlagKey("$Forwarded", True)),
        (b"UNKEYWORD $Junk", FlagKey("$Junk", False)),
        (b"BCC joe", TextKey("BCC", "joe")),
        (b"BODY {5+}\r\nhello", TextKey("BODY", "hello")),
        (b'CC "a b"', TextKey("CC", "a b")),
        (b"FROM Smith", TextKey("FROM", "Smith")),
        (b"SUBJECT lunch", TextKey("SUBJECT", "lunch")),
        (b"TEXT foo", TextKey("TEXT", "foo")),
        (b"TO bob", TextKey("TO", "bob")),
        (b'HEADER X-Mailer ""', HeaderKey("X-Mailer", "")),
        (b"BEFORE 1-Feb-1994", DateKey(False, "BEFORE", date(1994, 2, 1))),
        (b'ON "17-Jul-1996"', DateKey(False, "ON", date(1996, 7, 17))),
        (b"SINCE 01-jan-2020", DateKey(False, "SINCE", date(2020, 1, 1))),
        (b"SENTBEFORE 1-Feb-1994", DateKey(True, "BEFORE", date(1994, 2, 1))),
        (b"SENTON 1-Feb-1994", DateKey(True, "ON", date(1994, 2, 1))),
        (b"SENTSINCE 1-Feb-1994", DateKey(True, "SINCE", date(1994, 2, 1))),
        (b"LARGER 1024", SizeKey(True, 1024)),
        (b"SMALLER 10", SizeKey(False, 10)),
        (b"UID 1:100,200", SeqKey(SequenceSet(((1, 100), (200, 200))), uid=True)),
        (b"2:*", SeqKey(SequenceSet(((2, STAR),)), uid=False)),
        (b"$", SeqKey(SequenceSet((), saved=True), uid=False)),
        (b"NOT SEEN", NotKey(SEEN)),
        (b"OR SEEN FLAGGED", OrKey(SEEN, FlagKey("\\Flagged", True))),
        (b"(SEEN)", SEEN),
        (b"(SEEN DELETED)", AndKey((SEEN, FlagKey("\\Deleted", True)))),
        (b"MODSEQ 620162338", ModSeqKey(620162338)),
        (b'MODSEQ "/flags/\\\\draft" all 620162338', ModSeqKey(620162338, "/flags/\\draft", "all")),
    ],
)
def test_every_key(parse: Parse, text: bytes, expected: SearchKey) -> None:
    assert key(parse, text) == expected


def test_combined_program(parse: Parse) -> None:
    cmd = parse(
        b'a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM bob (SUBJECT "caf\xc3\xa9" UNSEEN) NOT 1:4 SINCE 1-Feb-2020'
    )
    assert cmd == c.Search(
        "a",
        True,
        AndKey(
            (
                OrKey(TextKey("FROM", "bob"), AndKey((TextKey("SUBJECT", "café"), UNSEEN))),
                NotKey(SeqKey(SequenceSet(((1, 4),)), uid=False)),
                DateKey(False, "SINCE", date(2020, 2, 1)),
            )
        ),
        "UTF-8",
        frozenset({"MIN", "COUNT"}),
    )


def test_return_options(parse: Parse) -> None:
    plain = parse(b"a SEARCH ALL")
    assert isinstance(plain, c.Search) and plain.returns is None and plain.charset is None
    empty = parse(b"a SEARCH RETURN () ALL")
    assert isinstance(empty, c.Search) and empty.returns == frozenset({"ALL"})  # RFC 4731 §3.1
    save = parse(b"a SEARCH RETURN (SAVE MAX ALL) FLAGGED")
    assert isinstance(save, c.Search) and save.returns == frozenset({"SAVE", "MAX", "ALL"})
    with pytest.raises(ParseError):
        parse(b"a SEARCH RETURN (PARTIAL) ALL")


def test_other_charset_is_decoded(parse: Parse) -> None:
    cmd = parse(b"a SEARCH CHARSET ISO-8859-1 SUBJECT {4+}\r\ncaf\xe9")
    assert isinstance(cmd, c.Search) and cmd.key == TextKey("SUBJECT", "café")


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"OR SEEN",
        b"NOT",
        b"(SEEN",
        b"SEEN)",
        b"BEFORE 32-Jan-2020",
        b"BEFORE 1-Foo-2020",
        b"LARGER x",
        b"HEADER Subject",
        b"UID",
        b'MODSEQ "/flags/x" bogus 1',
        b"1:4,$",
        b"KEYWORD \\Seen\\",
    ],
)
def test_bad_keys(parse: Parse, text: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse(b"t SEARCH " + text)
    assert info.value.tag == "t"
