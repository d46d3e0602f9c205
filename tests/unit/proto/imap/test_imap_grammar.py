"""Every command form of RFC 3501 / RFC 9051 and of the extensions, parsed to typed commands."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from courriel.proto.imap import commands as c
from courriel.proto.imap.errors import ParseError
from courriel.proto.imap.sequence import STAR, SequenceSet

from .conftest import Parse


def seq(*ranges: tuple[int, int]) -> SequenceSet:
    return SequenceSet(tuple(ranges))


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b"a CAPABILITY", c.Capability("a")),
        (b"a noop", c.Noop("a")),
        (b"a LOGOUT", c.Logout("a")),
        (b"a STARTTLS", c.StartTls("a")),
        (b"a NAMESPACE", c.Namespace("a")),
        (b"a CHECK", c.Check("a")),
        (b"a CLOSE", c.Close("a")),
        (b"a UNSELECT", c.Unselect("a")),
        (b"a EXPUNGE", c.Expunge("a")),
        (b"a IDLE", c.Idle("a")),
        (b"a UID EXPUNGE 3:5,9", c.Expunge("a", seq((3, 5), (9, 9)))),
    ],
)
def test_commands_without_arguments(parse: Parse, wire: bytes, expected: c.Command) -> None:
    assert parse(wire) == expected


def test_login_forms(parse: Parse) -> None:
    assert parse(b"a1 LOGIN bob secret") == c.Login("a1", "bob", "secret")
    assert parse(b'a1 LOGIN "b o\\"b" "p\\\\w"') == c.Login("a1", 'b o"b', "p\\w")
    assert parse(b"a1 LOGIN ~peter pass") == c.Login("a1", "~peter", "pass")


def test_login_literal_utf8(parse: Parse) -> None:
    assert parse(b"a1 LOGIN {3+}\r\nbob {5+}\r\np\xc3\xa9ss\r\n") == c.Login("a1", "bob", "p\u00e9ss")


def test_authenticate_with_and_without_initial_response(parse: Parse) -> None:
    assert parse(b"a AUTHENTICATE plain") == c.Authenticate("a", "PLAIN")
    assert parse(b"a AUTHENTICATE PLAIN AGJvYgBwdw==") == c.Authenticate("a", "PLAIN", b"\x00bob\x00pw")
    assert parse(b"a AUTHENTICATE EXTERNAL =") == c.Authenticate("a", "EXTERNAL", b"")


def test_enable(parse: Parse) -> None:
    assert parse(b"a ENABLE CONDSTORE qresync") == c.Enable("a", ("CONDSTORE", "QRESYNC"))


def test_id(parse: Parse) -> None:
    assert parse(b"a ID NIL") == c.Id("a", None)
    assert parse(b'a ID ("name" "Thunderbird" "version" NIL)') == c.Id(
        "a", (("name", "Thunderbird"), ("version", None))
    )


def test_select_examine(parse: Parse) -> None:
    assert parse(b"a SELECT inbox") == c.Select("a", "INBOX")
    assert parse(b"a EXAMINE Archive/2020") == c.Select("a", "Archive/2020", readonly=True)
    assert parse(b"a SELECT INBOX (CONDSTORE)") == c.Select("a", "INBOX", condstore=True)


def test_select_qresync(parse: Parse) -> None:
    cmd = parse(b"A03 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))")
    assert cmd == c.Select(
        "A03",
        "INBOX",
        qresync=c.QResyncParams(67890007, 20050715194045000, seq((41, 41), (43, 211), (214, 541))),
    )
    cmd = parse(
        b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000 15000,22500,27000)))"
    )
    assert isinstance(cmd, c.Select) and cmd.qresync is not None
    assert cmd.qresync.seq_match == (
        seq((5000, 5000), (7500, 7500), (9000, 9000)),
        seq((15000, 15000), (22500, 22500), (27000, 27000)),
    )
    only_match = parse(b"a SELECT INBOX (QRESYNC (1 2 (1:2 5:6)))")
    assert isinstance(only_match, c.Select) and only_match.qresync is not None
    assert only_match.qresync.known_uids is None and only_match.qresync.seq_match is not None


def test_create_with_special_use(parse: Parse) -> None:
    assert parse(b"a CREATE Drafts (USE (\\drafts))") == c.Create("a", "Drafts", ("\\Drafts",))
    assert parse(b'a CREATE "My Stuff"') == c.Create("a", "My Stuff")
    assert parse(b"a CREATE Junk (USE ())") == c.Create("a", "Junk")


def test_mailbox_commands(parse: Parse) -> None:
    assert parse(b"a DELETE foo") == c.Delete("a", "foo")
    assert parse(b"a RENAME foo {3+}\r\nbar\r\n") == c.Rename("a", "foo", "bar")
    assert parse(b"a SUBSCRIBE &U,BTFw-") == c.Subscribe("a", "&U,BTFw-")
    assert parse(b'a UNSUBSCRIBE "x y"') == c.Unsubscribe("a", "x y")


def test_list_basic_and_lsub(parse: Parse) -> None:
    assert parse(b'a LIST "" *') == c.List("a", "", ("*",))
    assert parse(b"a LIST ~/Mail/ %") == c.List("a", "~/Mail/", ("%",))
    assert parse(b'a LIST "" "INBOX.%"') == c.List("a", "", ("INBOX.%",))
    assert parse(b'a LSUB "#news." "comp.mail.*"') == c.Lsub("a", "#news.", "comp.mail.*")


def test_list_extended(parse: Parse) -> None:
    cmd = parse(
        b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "Drafts*" %) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))'
    )
    assert cmd == c.List(
        "a",
        "",
        ("INBOX", "Drafts*", "%"),
        frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}),
        frozenset({"CHILDREN"}),
        ("MESSAGES", "UNSEEN"),
        extended=True,
    )
    cmd = parse(b'a LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE SUBSCRIBED)')
    assert (
        isinstance(cmd, c.List)
        and cmd.selection == {"SPECIAL-USE"}
        and cmd.returns == {"SPECIAL-USE", "SUBSCRIBED"}
    )
    assert parse(b'a LIST () "" %') == c.List("a", "", ("%",), extended=True)
    assert parse(b'a LIST "" % RETURN ()') == c.List("a", "", ("%",), extended=True)


def test_status(parse: Parse) -> None:
    cmd = parse(b"a STATUS blurdybloop (UIDNEXT MESSAGES SIZE HIGHESTMODSEQ DELETED APPENDLIMIT)")
    assert cmd == c.Status(
        "a", "blurdybloop", ("UIDNEXT", "MESSAGES", "SIZE", "HIGHESTMODSEQ", "DELETED", "APPENDLIMIT")
    )


def test_append_forms(parse: Parse) -> None:
    msg = b"Subject: hi\r\n\r\nbody\r\n"
    assert parse(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(msg), msg)) == c.Append("a", "INBOX", (), None, msg)
    cmd = parse(
        b'a APPEND Sent (\\Seen $Forwarded) "07-Feb-1994 21:52:25 -0800" {%d+}\r\n%s\r\n' % (len(msg), msg)
    )
    tz = timezone(-timedelta(hours=8))
    assert cmd == c.Append(
        "a", "Sent", ("\\Seen", "$Forwarded"), datetime(1994, 2, 7, 21, 52, 25, tzinfo=tz), msg
    )
    cmd = parse(b'a APPEND INBOX " 7-Feb-1994 01:02:03 +0000" ~{3+}\r\n\x00\x01\x02\r\n')
    assert isinstance(cmd, c.Append) and cmd.binary and cmd.message == b"\x00\x01\x02"
    cmd = parse(b"a APPEND INBOX UTF8 (~{2+}\r\nhi)\r\n")
    assert isinstance(cmd, c.Append) and cmd.utf8 and cmd.message == b"hi"


def test_store_forms(parse: Parse) -> None:
    assert parse(b"a STORE 2:4 +FLAGS (\\Deleted)") == c.Store(
        "a", False, seq((2, 4)), "+", False, ("\\Deleted",)
    )
    assert parse(b"a STORE 1 -FLAGS.SILENT \\seen $Junk") == c.Store(
        "a", False, seq((1, 1)), "-", True, ("\\Seen", "$Junk")
    )
    assert parse(b"a UID STORE 1:* FLAGS ()") == c.Store("a", True, seq((1, STAR)), "", False, ())
    cmd = parse(b"a STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)")
    assert isinstance(cmd, c.Store) and cmd.unchangedsince == 320162338 and cmd.silent


def test_copy_move_with_uid(parse: Parse) -> None:
    assert parse(b"a COPY 2:4 MEETING") == c.Copy("a", False, seq((2, 4)), "MEETING")
    assert parse(b"a UID MOVE 42:69 foo") == c.Move("a", True, seq((42, 69)), "foo")
    assert parse(b"a MOVE $ Trash") == c.Move("a", False, SequenceSet((), saved=True), "Trash")


@pytest.mark.parametrize(
    ("wire", "tag", "fragment"),
    [
        (b"a FROB", "a", "Unknown command"),
        (b"a UID FROB 1", "a", "Unknown UID command"),
        (b"a LOGIN bob", "a", "Missing arguments"),
        (b"a NOOP extra", "a", "Unexpected extra arguments"),
        (b"a SELECT INBOX (BOGUS)", "a", "SELECT parameter"),
        (b"a FETCH 0 FLAGS", "a", "Invalid sequence number"),
        (b"a FETCH 1:x FLAGS", "a", "Invalid sequence set"),
        (b"a FETCH 1 (FLAGS", "a", "Missing arguments"),
        (b"a FETCH 1 BODY[HEADER.FIELDS]", "a", "space"),
        (b"a FETCH 1 BODY[MIME]", "a", "Invalid section"),
        (b"a FETCH 1 FLAGS (VANISHED)", "a", "VANISHED"),
        (b"a SEARCH FROB", "a", "Unknown search key"),
        (b"a SEARCH " + b"NOT " * 100 + b"ALL", "a", "nested too deeply"),
        (b'a LIST (RECURSIVEMATCH) "" *', "a", "RECURSIVEMATCH"),
        (b'a LIST (BOGUS) "" *', "a", "Unknown LIST selection option"),
        (b'a LIST "" * RETURN (BOGUS)', "a", "LIST return option"),
        (b"a STATUS INBOX (BOGUS)", "a", "Unknown STATUS item"),
        (b'a APPEND INBOX "31-Feb-2020 00:00:00 +0000" {1+}\r\nx', "a", "Invalid date"),
        (b"a AUTHENTICATE PLAIN !!!", "a", "Invalid initial response"),
        (b"a AUTHENTICATE PLAIN AGJvYgBwdw", "a", "base64"),
        (b'a LOGIN "unterminated', "a", "quoted string"),
        (b"a LOGIN \xff\xfe x", "a", "Expected a string"),
        (b"a CREATE x (USE (Drafts))", "a", "backslash"),
        (b"a ENABLE", "a", "Missing arguments"),
        (b"a STORE 1 FLAGS", "a", "Missing arguments"),
        (b"a STORE 1 +FLAGS.LOUD (x)", "a", "space"),
        (b"a SELECT INBOX (QRESYNC (1 2 1:*))", "a", "'*'"),
        (b"NOOP", None, "tag"),
        (b"+tag NOOP", None, "tag"),
    ],
)
def test_bad_commands_carry_the_tag(parse: Parse, wire: bytes, tag: str | None, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(wire)
    assert info.value.tag == tag
    assert info.value.status == "BAD"
    assert fragment.lower() in info.value.text.lower()


def test_id_limits(parse: Parse) -> None:
    with pytest.raises(ParseError, match="too long"):
        parse(b'a ID ("' + b"k" * 31 + b'" "v")')
    pairs = b" ".join(b'"k%d" "v"' % i for i in range(31))
    with pytest.raises(ParseError, match="Too many"):
        parse(b"a ID (" + pairs + b")")


def test_search_unknown_charset_is_no_badcharset(parse: Parse) -> None:
    with pytest.raises(ParseError) as info:
        parse(b"a SEARCH CHARSET X-UNKNOWN-CS TEXT foo")
    assert (info.value.tag, info.value.status, info.value.code) == ("a", "NO", "BADCHARSET (US-ASCII UTF-8)")


def test_nul_in_string_literal_is_refused(parse: Parse) -> None:
    with pytest.raises(ParseError, match="NUL"):
        parse(b"a LOGIN {3+}\r\nb\x00b pw\r\n")
