"""SEARCH and UID SEARCH: criteria from the view, the store and the searchable text; ESEARCH,
SEARCHRES ($), MODSEQ, IMAP4rev2, and loading text only for undecided messages."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from tests.unit.proto.imap.session.conftest import Client, MakeClient, message
from tests.unit.proto.imap.session.fakestore import Mailbox

QP = (
    b"From: Carol <carol@example.net>\r\nTo: alice@example.com\r\nSubject: =?utf-8?q?R=C3=A9union?=\r\n"
    b"Date: Mon, 2 Nov 2026 09:00:00 +0000\r\nX-Project: Apollo\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Ordre du jour: caf=C3=A9 et budget\r\n"
)
B64 = (
    b"From: dave@example.org\r\nSubject: numbers\r\nDate: Sun, 15 Nov 2026 09:00:00 +0000\r\n"
    b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(b"<p>The <b>MEETING</b> moved</p>")
)


async def populated(client: MakeClient, mailbox: Mailbox) -> Client:
    mailbox.deliver("INBOX", message(1, "hello", "plain words"), flags=1)  # seen
    mailbox.deliver("INBOX", QP, keywords=("$Work",), when=datetime(2026, 11, 2, 9, tzinfo=UTC))
    mailbox.deliver("INBOX", B64, flags=4, when=datetime(2026, 11, 15, 9, tzinfo=UTC))
    mailbox.deliver("INBOX", message(4, "meeting", "x" * 3000), flags=1 | 8)
    c = await client()
    await c.login()
    await c.select()
    return c


async def search(c: Client, criteria: bytes, tag: bytes = b"s1") -> bytes:
    out = await c.lines(tag + b" " + criteria)
    assert out[-1].startswith(tag + b" OK"), out
    return b"\r\n".join(out[:-1])


async def test_flag_and_keyword_criteria(client: MakeClient, mailbox: Mailbox) -> None:
    c = await populated(client, mailbox)
    mailbox.calls.clear()
    assert await search(c, b"SEARCH SEEN") == b"* SEARCH 1 4"
    assert await search(c, b"SEARCH UNSEEN UNFLAGGED") == b"* SEARCH 2"
    assert await search(c, b"SEARCH KEYWORD $work") == b"* SEARCH 2"
    assert await search(c, b"SEARCH UNKEYWORD $Work DELETED") == b"* SEARCH 4"
    assert await search(c, b"SEARCH OR FLAGGED DELETED") == b"* SEARCH 3 4"
    assert await search(c, b"SEARCH NOT 2:3") == b"* SEARCH 1 4"
    assert await search(c, b"UID SEARCH UID 2:* NOT SEEN") == b"* SEARCH 2 3"
    assert await search(c, b"SEARCH RECENT") == b"* SEARCH 1 2 3 4"
    assert await search(c, b"SEARCH NEW") == b"* SEARCH 2 3"
    assert await search(c, b"SEARCH ANSWERED") == b"* SEARCH"
    assert mailbox.calls["message_meta"] == 0  # all from the view


async def test_size_and_dates_go_to_the_store(client: MakeClient, mailbox: Mailbox) -> None:
    c = await populated(client, mailbox)
    mailbox.calls.clear()
    assert await search(c, b"SEARCH LARGER 1000") == b"* SEARCH 4"
    assert await search(c, b"SEARCH SMALLER 1000 SINCE 10-Nov-2026") == b"* SEARCH 1 3"
    assert await search(c, b"SEARCH ON 2-Nov-2026") == b"* SEARCH 2"
    assert mailbox.calls["search"] == 4 and mailbox.calls["message_meta"] == 0


async def test_text_criteria_match_decoded_mime(client: MakeClient, mailbox: Mailbox) -> None:
    c = await populated(client, mailbox)
    assert await search(c, b'SEARCH BODY "caf\xc3\xa9"') == b"* SEARCH 2"
    assert await search(c, b'SEARCH CHARSET UTF-8 SUBJECT "R\xc3\xa9UNION"') == b"* SEARCH 2"
    assert await search(c, b"SEARCH TEXT meeting") == b"* SEARCH 3 4"  # base64 HTML and a subject
    assert await search(c, b"SEARCH FROM carol") == b"* SEARCH 2"
    assert await search(c, b'SEARCH HEADER X-Project ""') == b"* SEARCH 2"
    assert await search(c, b"SEARCH HEADER X-Project apollo") == b"* SEARCH 2"
    assert await search(c, b"SEARCH SENTBEFORE 10-Nov-2026") == b"* SEARCH 2"
    assert await search(c, b"SEARCH SENTSINCE 10-Nov-2026 NOT SENTON 27-Nov-2026") == b"* SEARCH 3"
    assert await search(c, b"SEARCH OR BODY budget FLAGGED") == b"* SEARCH 2 3"


async def test_text_is_loaded_only_for_undecided_messages_and_then_cached(
    client: MakeClient, mailbox: Mailbox
) -> None:
    c = await populated(client, mailbox)
    mailbox.calls.clear()
    assert await search(c, b"SEARCH UNSEEN BODY budget") == b"* SEARCH 2"
    assert mailbox.calls["meta_rows"] == 2  # only the two unseen messages
    assert mailbox.calls["messages_read"] == 2 and mailbox.calls["save_analysis"] == 1
    mailbox.calls.clear()
    assert await search(c, b"SEARCH BODY budget") == b"* SEARCH 2"
    assert mailbox.calls["messages_read"] == 2  # messages 1 and 4 were not analysed yet
    mailbox.calls.clear()
    assert await search(c, b"SEARCH TEXT budget") == b"* SEARCH 2"
    assert mailbox.calls["messages_read"] == 0


async def test_esearch_and_uid(client: MakeClient, mailbox: Mailbox) -> None:
    c = await populated(client, mailbox)
    out = await search(c, b"UID SEARCH RETURN (MIN MAX COUNT ALL) UNDELETED", b"t1")
    assert out == b'* ESEARCH (TAG "t1") UID MIN 1 MAX 3 COUNT 3 ALL 1:3'
    assert await search(c, b"SEARCH RETURN () SEEN", b"t2") == b'* ESEARCH (TAG "t2") ALL 1,4'
    assert await search(c, b"SEARCH RETURN (COUNT) ANSWERED", b"t3") == b'* ESEARCH (TAG "t3") COUNT 0'


async def test_searchres_saves_and_reuses_the_result(client: MakeClient, mailbox: Mailbox) -> None:
    c = await populated(client, mailbox)
    assert await search(c, b"SEARCH RETURN (SAVE) UNSEEN") == b""
    assert (
        await c.send(b"f1 FETCH $ (UID)")
        == b"* 2 FETCH (UID 2)\r\n* 3 FETCH (UID 3)\r\nf1 OK FETCH completed\r\n"
    )
    assert await search(c, b"UID SEARCH RETURN (SAVE MIN) ALL", b"s2") == b'* ESEARCH (TAG "s2") UID MIN 1'
    assert await search(c, b"SEARCH $") == b"* SEARCH 1"
    assert (await c.send(b"s3 SEARCH RETURN (SAVE) CHARSET KOI9-X ALL")).startswith(b"s3 NO [BADCHARSET")
    assert await search(c, b"SEARCH $") == b"* SEARCH"


async def test_modseq_criterion(client: MakeClient, mailbox: Mailbox) -> None:
    c = await populated(client, mailbox)
    mailbox.set_flags("INBOX", 2, 2)
    await c.send(b"n1 NOOP")
    top = mailbox.folders["INBOX"].highestmodseq
    # The first CONDSTORE-enabling command while selected repeats HIGHESTMODSEQ (RFC 7162 §3.1).
    assert await search(
        c, b"SEARCH MODSEQ %d" % top
    ) == b"* OK [HIGHESTMODSEQ %d] Highest\r\n* SEARCH 2 (MODSEQ %d)" % (top, top)
    assert c.session.condstore
    assert (
        await search(c, b"SEARCH RETURN (ALL) MODSEQ 1", b"t2")
        == b'* ESEARCH (TAG "t2") ALL 1:4 MODSEQ %d' % top
    )


async def test_rev2_search_answers_esearch(client: MakeClient, mailbox: Mailbox) -> None:
    mailbox.deliver("INBOX", message(1))
    c = await client()
    await c.login()
    await c.send(b"e1 ENABLE IMAP4rev2")
    await c.select()
    assert await search(c, b"SEARCH ALL", b"r1") == b'* ESEARCH (TAG "r1") ALL 1'


async def test_bad_search_programs(client: MakeClient, mailbox: Mailbox) -> None:
    c = await populated(client, mailbox)
    assert (await c.send(b"s1 SEARCH FOO")).startswith(b"s1 BAD")
    assert (await c.send(b"s2 SEARCH 9")).startswith(b"s2 BAD Invalid message sequence number")
    assert (await c.send(b"s3 SEARCH (SEEN")).startswith(b"s3 BAD")
