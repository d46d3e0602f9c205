"""SELECT and EXAMINE (IMAP4rev1 and rev2 answers, CONDSTORE, QRESYNC), CLOSE, UNSELECT, CHECK."""

from __future__ import annotations

from tests.unit.proto.imap.session.conftest import Client, MakeClient, message
from tests.unit.proto.imap.session.fakestore import Mailbox


async def logged_in(client: MakeClient, mailbox: Mailbox, count: int = 3) -> Client:
    for n in range(count):
        mailbox.deliver(
            "INBOX", message(n), flags=1 if n == 0 else 0, keywords=("$Forwarded",) if n == 2 else ()
        )
    c = await client()
    await c.login()
    return c


async def test_select_answers_like_rfc_3501(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client, mailbox)
    uidvalidity = mailbox.folders["INBOX"].uidvalidity
    out = await c.lines(b"a1 SELECT INBOX")
    assert out == [
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)",
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded \\*)] Flags permitted",
        b"* 3 EXISTS",
        b"* 3 RECENT",
        b"* OK [UNSEEN 2] First unseen",
        b"* OK [UIDVALIDITY %d] UIDs valid" % uidvalidity,
        b"* OK [UIDNEXT 4] Predicted next UID",
        b"* OK [HIGHESTMODSEQ 4] Highest",
        b"a1 OK [READ-WRITE] SELECT completed",
    ]


async def test_recent_belongs_to_the_first_session(client: MakeClient, mailbox: Mailbox) -> None:
    first = await logged_in(client, mailbox)
    assert b"* 3 RECENT" in await first.select()
    second = await client()
    await second.login()
    assert b"* 0 RECENT" in await second.select()
    assert b"\\Recent" in await first.send(b"f1 FETCH 1 FLAGS")
    assert b"\\Recent" not in await second.send(b"f1 FETCH 1 FLAGS")


async def test_examine_is_read_only_and_keeps_recent(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client, mailbox)
    out = await c.send(b"a1 EXAMINE INBOX")
    assert b"* OK [PERMANENTFLAGS ()] Flags permitted\r\n" in out
    assert out.endswith(b"a1 OK [READ-ONLY] EXAMINE completed\r\n")
    other = await client()
    await other.login()
    assert b"* 3 RECENT" in await other.select()  # EXAMINE did not take \Recent away
    assert (await c.send(b"s1 STORE 1 +FLAGS (\\Seen)")).startswith(b"s1 NO [READ-ONLY]")
    assert (await c.send(b"e1 EXPUNGE")).startswith(b"e1 NO [READ-ONLY]")


async def test_select_of_missing_or_noselect_mailbox(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client, mailbox)
    await c.select()
    assert await c.send(b"a1 SELECT Nope") == b"a1 NO [NONEXISTENT] Mailbox does not exist\r\n"
    assert (await c.send(b"a2 FETCH 1 FLAGS")).startswith(b"a2 BAD")  # the failed SELECT deselected
    await c.send(b"c1 CREATE Box/Child")
    await c.send(b"d1 DELETE Box")  # Box has a child: it stays as \Noselect
    assert (await c.send(b"a3 SELECT Box")).startswith(b"a3 NO [NONEXISTENT]")


async def test_rev2_select_has_no_recent_and_lists_the_mailbox(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client, mailbox)
    await c.send(b"e1 ENABLE IMAP4rev2")
    out = await c.send(b"a1 SELECT inbox")
    assert b"RECENT" not in out and b"[UNSEEN" not in out
    assert b'* LIST () "/" INBOX\r\n' in out
    out = await c.send(b"a2 SELECT INBOX")
    assert out.startswith(b"* OK [CLOSED] Previous mailbox closed\r\n")


async def test_condstore_select_and_highestmodseq(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client, mailbox)
    out = await c.send(b"a1 SELECT INBOX (CONDSTORE)")
    assert b"* OK [HIGHESTMODSEQ 4] Highest\r\n" in out
    assert c.session.condstore
    out = await c.send(b"f1 FETCH 1 (FLAGS)")
    assert out == b"* 1 FETCH (FLAGS (\\Seen \\Recent))\r\nf1 OK FETCH completed\r\n"


async def test_qresync_reports_vanished_and_changed(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client, mailbox, count=5)
    uidvalidity = mailbox.folders["INBOX"].uidvalidity
    seen = mailbox.folders["INBOX"].highestmodseq  # the client's state: 5 messages, modseq 6
    mailbox.remove("INBOX", [2, 4])
    mailbox.set_flags("INBOX", 3, 4)
    assert (await c.send(b"q0 SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity, seen))).startswith(b"q0 BAD")
    await c.send(b"e1 ENABLE QRESYNC")
    out = await c.lines(b"q1 SELECT INBOX (QRESYNC (%d %d 1:5))" % (uidvalidity, seen))
    assert b"* VANISHED (EARLIER) 2,4" in out
    assert b"* 2 FETCH (UID 3 FLAGS (\\Flagged \\Recent) MODSEQ (8))" in out
    assert out[-1] == b"q1 OK [READ-WRITE] SELECT completed"
    # A stale UIDVALIDITY: no replay, the client resynchronises from scratch.
    out = await c.lines(b"q2 SELECT INBOX (QRESYNC (1 %d))" % seen)
    assert not any(b"VANISHED" in line for line in out)
    assert out[0] == b"* OK [CLOSED] Previous mailbox closed"


async def test_close_expunges_silently_and_unselect_does_not(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client, mailbox)
    await c.select()
    await c.send(b"s1 STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert await c.send(b"u1 UNSELECT") == b"u1 OK UNSELECT completed\r\n"
    assert len(mailbox.folders["INBOX"].messages) == 3
    await c.select()
    assert await c.send(b"c1 CLOSE") == b"c1 OK CLOSE completed\r\n"
    assert sorted(mailbox.folders["INBOX"].messages) == [3]
    assert (await c.send(b"c2 CLOSE")).startswith(b"c2 BAD")


async def test_check_reports_new_mail(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client, mailbox)
    await c.select()
    mailbox.deliver("INBOX", message(9))
    assert await c.send(b"k1 CHECK") == b"* 4 EXISTS\r\n* 4 RECENT\r\nk1 OK CHECK completed\r\n"
