"""FETCH and UID FETCH: view-only items without queries, batched metadata, the analysis cache,
body sections, \\Seen as a side effect, BINARY, CHANGEDSINCE and VANISHED, expunged messages."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.unit.proto.imap.session.conftest import SIMPLE, Client, MakeClient, message
from tests.unit.proto.imap.session.fakestore import Mailbox

MESSAGES = Path(__file__).parent.parent / "messages"


async def selected(client: MakeClient, mailbox: Mailbox, *bodies: bytes) -> Client:
    for body in bodies:
        mailbox.deliver("INBOX", body)
    c = await client()
    await c.login()
    await c.select()
    return c


async def test_flags_and_uid_come_from_the_view_without_queries(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox, *(message(n) for n in range(600)))
    mailbox.calls.clear()
    out = await c.lines(b"f1 UID FETCH 1:* (FLAGS)")
    assert len(out) == 601
    assert out[0] == b"* 1 FETCH (UID 1 FLAGS (\\Recent))"
    assert out[599] == b"* 600 FETCH (UID 600 FLAGS (\\Recent))"
    assert mailbox.calls["message_meta"] == 0 and mailbox.calls["messages_read"] == 0


async def test_envelope_and_bodystructure_are_analysed_once_and_cached(
    client: MakeClient, mailbox: Mailbox
) -> None:
    c = await selected(client, mailbox, SIMPLE, *(message(n) for n in range(700)))
    mailbox.calls.clear()
    out = await c.lines(b"f1 FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    assert out[0] == (
        b'* 1 FETCH (ENVELOPE ("Fri, 27 Nov 2026 10:00:00 +0100" "Lunch meeting" (("Alice" NIL "alice" '
        b'"example.com")) (("Alice" NIL "alice" "example.com")) (("Alice" NIL "alice" "example.com")) '
        b'(("Bob" NIL "bob" "example.com")) NIL NIL NIL "<m1@example.com>") BODYSTRUCTURE ("text" "plain" '
        b'("charset" "utf-8") NIL NIL "7bit" 24 1 NIL NIL NIL NIL))'
    )
    assert len(out) == 702
    # Batched: one metadata query per 500 messages, bytes read once, analysis saved.
    assert mailbox.calls["message_meta"] == 2 and mailbox.calls["messages_read"] == 701
    assert len(mailbox.analysis) == 701
    mailbox.calls.clear()
    assert await c.lines(b"f2 FETCH 1:* (ENVELOPE BODYSTRUCTURE)") == [*out[:-1], b"f2 OK FETCH completed"]
    assert mailbox.calls["messages_read"] == 0  # the second time comes from the cache


async def test_body_fetch_sets_seen_and_returns_flags(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox, SIMPLE)
    out = await c.send(b"f1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)")
    assert out == (
        b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {26}\r\nSubject: Lunch meeting\r\n\r\n RFC822.SIZE %d)\r\n"
        b"f1 OK FETCH completed\r\n" % len(SIMPLE)
    )
    assert mailbox.folders["INBOX"].messages[1].flags == 0
    out = await c.send(b"f2 FETCH 1 (BODY[TEXT])")
    assert (
        out
        == b"* 1 FETCH (BODY[TEXT] {24}\r\nShall we meet at noon?\r\n FLAGS (\\Seen \\Recent))\r\nf2 OK FETCH completed\r\n"
    )
    assert mailbox.folders["INBOX"].messages[1].flags == 1
    out = await c.send(b"f3 FETCH 1 (BODY[]<0.4> BODY[1]<6.8>)")
    assert out == b"* 1 FETCH (BODY[]<0> {4}\r\nFrom BODY[1]<6> {8}\r\nwe meet )\r\nf3 OK FETCH completed\r\n"


async def test_rfc822_items_and_internaldate(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox, SIMPLE)
    out = await c.send(b"f1 UID FETCH 1 (RFC822.HEADER INTERNALDATE)")
    header = SIMPLE[: SIMPLE.index(b"\r\n\r\n") + 4]
    assert out == (
        b'* 1 FETCH (UID 1 RFC822.HEADER {%d}\r\n%s INTERNALDATE "28-Nov-2026 12:00:00 +0000")\r\n'
        b"f1 OK FETCH completed\r\n" % (len(header), header)
    )
    out = await c.send(b"f2 FETCH 1 RFC822")
    assert out.startswith(b"* 1 FETCH (RFC822 {%d}\r\n%s FLAGS (\\Seen \\Recent))" % (len(SIMPLE), SIMPLE))


async def test_multipart_sections_and_binary(client: MakeClient, mailbox: Mailbox) -> None:
    mixed = (MESSAGES / "mixed.eml").read_bytes()
    c = await selected(client, mailbox, mixed)
    out = await c.send(b"f1 FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BINARY.SIZE[2])")
    # RFC 2046 §5.1.1: the CRLF before a delimiter belongs to the delimiter.
    assert out.startswith(b"* 1 FETCH (BODY[1] {26}\r\nSee the attached report.\r\n BODY[2.MIME] {345}\r\n")
    pdf = base64.b64decode(
        b"JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcgo8PC9Sb290IDEgMCBSPj4KJSVFT0YK"
    )
    assert out.endswith(b" BINARY.SIZE[2] %d)\r\nf1 OK FETCH completed\r\n" % len(pdf))
    out = await c.send(b"f2 FETCH 1 (BINARY.PEEK[2])")
    assert out == b"* 1 FETCH (BINARY[2] ~{%d}\r\n" % len(pdf) + pdf + b")\r\nf2 OK FETCH completed\r\n"
    out = await c.send(b"f3 FETCH 1 BODY")
    assert out.startswith(b'* 1 FETCH (BODY (("text" "plain" ("charset" "ISO-8859-1") NIL NIL "7bit" 26 1)(')


async def test_unknown_transfer_encoding_is_refused_for_binary(client: MakeClient, mailbox: Mailbox) -> None:
    weird = b"Subject: x\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n"
    c = await selected(client, mailbox, weird)
    assert (await c.send(b"f1 FETCH 1 BINARY.PEEK[1]")).endswith(
        b"f1 NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding\r\n"
    )


async def test_changedsince_and_vanished(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox, *(message(n) for n in range(4)))
    await c.send(b"e1 UNSELECT")
    await c.send(b"e2 ENABLE QRESYNC")
    await c.select()  # \Recent was claimed by the first SELECT
    modseq = mailbox.folders["INBOX"].highestmodseq
    await c.send(b"s1 STORE 2 +FLAGS.SILENT (\\Flagged)")
    mailbox.remove("INBOX", [4])
    await c.send(b"n1 NOOP")
    out = await c.lines(b"f1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % modseq)
    assert out == [
        b"* VANISHED (EARLIER) 4",
        b"* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (%d))" % (modseq + 1),
        b"f1 OK FETCH completed",
    ]


async def test_fetch_of_a_message_expunged_elsewhere(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox, message(1), message(2))
    mailbox.remove("INBOX", [1])  # another session expunged it; this one has not been told
    out = await c.lines(b"f1 FETCH 1:2 (RFC822.SIZE)")
    # RFC 9051 §7.4.1: no EXPUNGE while answering FETCH; RFC 2180 §4.1.2: NO [EXPUNGEISSUED].
    assert out == [
        b"* 2 FETCH (RFC822.SIZE %d)" % len(message(2)),
        b"f1 NO [EXPUNGEISSUED] Some of the requested messages no longer exist",
    ]
    out = await c.lines(b"f2 UID FETCH 1:2 (RFC822.SIZE)")
    assert out == [
        b"* 2 FETCH (UID 2 RFC822.SIZE %d)" % len(message(2)),
        b"* 1 EXPUNGE",  # a UID command may announce it (RFC 9051 §7.5.1)
        b"f2 OK FETCH completed",
    ]


async def test_bad_sequence_numbers(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox, message(1))
    assert await c.send(b"f1 FETCH 2 FLAGS") == b"f1 BAD Invalid message sequence number\r\n"
    assert await c.send(b"f2 UID FETCH 99 FLAGS") == b"f2 OK FETCH completed\r\n"
    assert (await c.send(b"f3 FETCH 1 (BODY[1.MIMEX])")).startswith(b"f3 BAD")


async def test_header_fields_come_from_the_stored_header_block(client: MakeClient, mailbox: Mailbox) -> None:
    """A message list's FETCH reads no message bytes when the store keeps header blocks, and
    answers exactly what the bytes would give (RFC 9051 §6.4.5)."""
    bodies = [
        SIMPLE,
        *((MESSAGES / n).read_bytes() for n in ("nested.eml", "headeronly.eml", "oddities.eml")),
    ]
    c = await selected(client, mailbox, *bodies)
    command = (
        b"f1 FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)] "
        b"BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT)]<0.40> RFC822.HEADER BODY.PEEK[HEADER])"
    )
    mailbox.calls.clear()
    from_blocks = await c.send(command)
    assert mailbox.calls["message_meta"] == 1 and mailbox.calls["messages_read"] == 0
    assert b"* 4 FETCH (UID 4 " in from_blocks and from_blocks.endswith(b"f1 OK FETCH completed\r\n")
    mailbox.header_blocks = False  # a store without them (messages stored before it kept them)
    mailbox.calls.clear()
    assert await c.send(command) == from_blocks
    assert mailbox.calls["messages_read"] == 4
    mailbox.header_blocks = True
    mailbox.calls.clear()
    await c.send(b"f2 FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT])")  # TEXT needs the bytes
    assert mailbox.calls["messages_read"] == 1
