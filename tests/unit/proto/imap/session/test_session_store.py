"""STORE and UID STORE: modes, .SILENT, keywords and the FLAGS response, UNCHANGEDSINCE/MODIFIED."""

from __future__ import annotations

from tests.unit.proto.imap.session.conftest import Client, MakeClient, message
from tests.unit.proto.imap.session.fakestore import Mailbox


async def selected(client: MakeClient, mailbox: Mailbox, count: int = 3) -> Client:
    for n in range(count):
        mailbox.deliver("INBOX", message(n))
    c = await client()
    await c.login()
    await c.send(b"x1 SELECT INBOX")
    await c.send(b"x2 FETCH 1:* FLAGS")  # nothing recent any more would need a new session
    return c


async def test_add_remove_replace(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox)
    assert await c.send(b"s1 STORE 1:2 +FLAGS (\\Seen \\Flagged)") == (
        b"* 1 FETCH (FLAGS (\\Seen \\Flagged \\Recent))\r\n* 2 FETCH (FLAGS (\\Seen \\Flagged \\Recent))\r\n"
        b"s1 OK STORE completed\r\n"
    )
    assert (
        await c.send(b"s2 STORE 2 -FLAGS \\Flagged")
        == b"* 2 FETCH (FLAGS (\\Seen \\Recent))\r\ns2 OK STORE completed\r\n"
    )
    assert (
        await c.send(b"s3 UID STORE 3 FLAGS (\\Draft)")
        == b"* 3 FETCH (UID 3 FLAGS (\\Draft \\Recent))\r\ns3 OK STORE completed\r\n"
    )
    assert [m.flags for m in mailbox.folders["INBOX"].messages.values()] == [1 | 4, 1, 16]
    assert await c.send(b"s4 STORE 1 +FLAGS.SILENT (\\Answered)") == b"s4 OK STORE completed\r\n"
    assert mailbox.folders["INBOX"].messages[1].flags == 1 | 2 | 4


async def test_new_keyword_sends_flags_and_recent_is_ignored(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox)
    out = await c.lines(b"s1 STORE 1 +FLAGS ($Label1 \\Recent)")
    assert out == [
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)",
        b"* 1 FETCH (FLAGS ($Label1 \\Recent))",
        b"s1 OK STORE completed",
    ]
    assert (await c.send(b"s2 STORE 1 +FLAGS (\\Bogus)")).startswith(b"s2 BAD")
    assert (
        await c.send(b"s3 STORE 1 -FLAGS ($label1)")
        == b"* 1 FETCH (FLAGS (\\Recent))\r\ns3 OK STORE completed\r\n"
    )


async def test_unchangedsince_reports_modified(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox)
    base = mailbox.folders["INBOX"].highestmodseq
    mailbox.set_flags("INBOX", 2, 4)  # another client changed message 2
    out = await c.lines(b"s1 UID STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Seen)" % base)
    # RFC 7162 §3.1.3 example 3: .SILENT still reports the new MODSEQ of what changed.
    assert out[:2] == [
        b"* OK [HIGHESTMODSEQ %d] Highest" % base,  # what this session has seen so far
        b"* 1 FETCH (UID 1 MODSEQ (%d))" % (base + 2),
    ]
    assert out[2] == b"* 3 FETCH (UID 3 MODSEQ (%d))" % (base + 3)
    assert out[-1] == b"s1 OK [MODIFIED 2] Conditional STORE failed for some messages"
    assert mailbox.folders["INBOX"].messages[2].flags == 4
    out = await c.lines(b"s2 STORE 2 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % base)
    assert out[-1] == b"s2 OK [MODIFIED 2] Conditional STORE failed for some messages"


async def test_unsolicited_fetch_carries_modseq_once_condstore_is_on(
    client: MakeClient, mailbox: Mailbox
) -> None:
    c = await selected(client, mailbox)
    await c.send(b"f1 FETCH 1 (MODSEQ)")
    out = await c.send(b"s1 STORE 1 +FLAGS (\\Seen)")
    top = mailbox.folders["INBOX"].highestmodseq
    assert out == b"* 1 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (%d))\r\ns1 OK STORE completed\r\n" % top
