"""COPY, MOVE and their UID forms: COPYUID, TRYCREATE, expunges announced by MOVE."""

from __future__ import annotations

from tests.unit.proto.imap.session.conftest import Client, MakeClient, message
from tests.unit.proto.imap.session.fakestore import Mailbox


async def selected(client: MakeClient, mailbox: Mailbox) -> Client:
    for n in range(4):
        mailbox.deliver("INBOX", message(n), flags=4 if n == 1 else 0)
    c = await client()
    await c.login()
    await c.send(b"c0 CREATE Archive")
    await c.select()
    return c


async def test_copy_answers_copyuid_and_keeps_flags(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox)
    validity = mailbox.folders["Archive"].uidvalidity
    assert await c.send(b"c1 COPY 2:3 Archive") == b"c1 OK [COPYUID %d 2:3 1:2] COPY completed\r\n" % validity
    archived = mailbox.folders["Archive"].messages
    assert [m.flags for m in archived.values()] == [4, 0]
    assert (
        await c.send(b"c2 UID COPY 4,1 Archive")
        == b"c2 OK [COPYUID %d 1,4 3:4] COPY completed\r\n" % validity
    )
    assert await c.send(b"c3 UID COPY 99 Archive") == b"c3 OK COPY completed\r\n"


async def test_copy_to_a_missing_mailbox_says_trycreate(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox)
    assert await c.send(b"c1 COPY 1 Nowhere") == b"c1 NO [TRYCREATE] Mailbox does not exist\r\n"
    assert await c.send(b"m1 MOVE 1 Nowhere") == b"m1 NO [TRYCREATE] Mailbox does not exist\r\n"


async def test_move_sends_copyuid_then_expunges(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox)
    validity = mailbox.folders["Archive"].uidvalidity
    out = await c.lines(b"m1 MOVE 2,4 Archive")
    assert out == [
        b"* OK [COPYUID %d 2,4 1:2] Moved" % validity,
        b"* 2 EXPUNGE",
        b"* 3 EXPUNGE",
        b"m1 OK MOVE completed",
    ]
    assert sorted(mailbox.folders["INBOX"].messages) == [1, 3]
    assert await c.send(b"f1 FETCH 2 (UID)") == b"* 2 FETCH (UID 3)\r\nf1 OK FETCH completed\r\n"


async def test_uid_move_with_qresync_says_vanished(client: MakeClient, mailbox: Mailbox) -> None:
    mailbox.deliver("INBOX", message(1))
    mailbox.deliver("INBOX", message(2))
    c = await client()
    await c.login()
    await c.send(b"e1 ENABLE QRESYNC")
    await c.select()
    out = await c.lines(b"m1 UID MOVE 1:2 Drafts")
    assert out[1:] == [b"* VANISHED 1:2", b"m1 OK MOVE completed"]


async def test_copy_into_the_selected_mailbox_shows_exists(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox)
    out = await c.lines(b"c1 COPY 1 INBOX")
    assert out[0] == b"* 5 EXISTS"
