"""EXPUNGE and UID EXPUNGE: sequence-number bookkeeping, VANISHED with QRESYNC, HIGHESTMODSEQ."""

from __future__ import annotations

from tests.unit.proto.imap.session.conftest import Client, MakeClient, message
from tests.unit.proto.imap.session.fakestore import Mailbox


async def selected(
    client: MakeClient, mailbox: Mailbox, deleted: set[int], *, qresync: bool = False
) -> Client:
    for n in range(1, 7):
        mailbox.deliver("INBOX", message(n), flags=8 if n in deleted else 0)
    c = await client()
    await c.login()
    if qresync:
        await c.send(b"e1 ENABLE QRESYNC")
    await c.select()
    return c


async def test_expunge_numbers_shift_as_messages_go(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox, {2, 3, 5})
    # RFC 9051 §7.5.1: each EXPUNGE renumbers the messages after it.
    assert await c.lines(b"x1 EXPUNGE") == [
        b"* 2 EXPUNGE",
        b"* 2 EXPUNGE",
        b"* 3 EXPUNGE",
        b"x1 OK EXPUNGE completed",
    ]
    assert await c.send(b"f1 FETCH 1:* (UID)") == (
        b"* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 4)\r\n* 3 FETCH (UID 6)\r\nf1 OK FETCH completed\r\n"
    )


async def test_uid_expunge_only_touches_the_set(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox, {2, 3, 5})
    assert await c.lines(b"x1 UID EXPUNGE 3:4") == [b"* 3 EXPUNGE", b"x1 OK EXPUNGE completed"]
    assert sorted(mailbox.folders["INBOX"].messages) == [1, 2, 4, 5, 6]
    assert await c.send(b"x2 UID EXPUNGE 100") == b"x2 OK EXPUNGE completed\r\n"


async def test_qresync_uses_vanished_and_reports_highestmodseq(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, mailbox, {2, 3, 5}, qresync=True)
    out = await c.lines(b"x1 EXPUNGE")
    top = mailbox.folders["INBOX"].highestmodseq
    assert out == [b"* VANISHED 2:3,5", b"x1 OK [HIGHESTMODSEQ %d] EXPUNGE completed" % top]
