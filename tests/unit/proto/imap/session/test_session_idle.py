"""IDLE and live updates between sessions: EXISTS, FETCH, EXPUNGE with correct sequence numbers,
expunges held back during FETCH/STORE/SEARCH, keepalives, polling for other processes."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.proto.imap.session.conftest import Client, MakeClient, message
from tests.unit.proto.imap.session.fakestore import Mailbox


async def selected(client: MakeClient, **config: object) -> Client:
    c = await client(**config)
    await c.login()
    await c.select()
    return c


async def test_idle_reports_delivery_at_once(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client)
    assert await c.send(b"i1 IDLE") == b"+ idling\r\n"
    mailbox.deliver("INBOX", message(1))
    await c.settle()
    assert c.wire.take() == b"* 1 EXISTS\r\n* 1 RECENT\r\n"
    assert await c.send(b"DONE") == b"i1 OK IDLE terminated\r\n"


async def test_idle_needs_done(client: MakeClient) -> None:
    c = await selected(client)
    await c.send(b"i1 IDLE")
    assert await c.send(b"i2 NOOP") == b"i1 BAD Expected DONE\r\n"
    assert await c.send(b"i3 NOOP") == b"i3 OK NOOP completed\r\n"


async def test_idle_in_authenticated_state_and_pipelined_done(client: MakeClient) -> None:
    c = await client()
    await c.login()
    assert await c.send(b"i1 IDLE\r\nDONE\r\nn1 NOOP\r\n") == (
        b"+ idling\r\ni1 OK IDLE terminated\r\nn1 OK NOOP completed\r\n"
    )


async def test_two_sessions_see_each_others_changes(client: MakeClient, mailbox: Mailbox) -> None:
    for n in range(1, 5):
        mailbox.deliver("INBOX", message(n))
    a = await selected(client)
    b = await selected(client)
    await b.send(b"s1 STORE 2 +FLAGS.SILENT (\\Seen)")
    assert (
        await a.send(b"n1 NOOP") == b"* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))\r\nn1 OK NOOP completed\r\n"
    )
    await b.send(b"s2 STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    await b.send(b"x1 EXPUNGE")
    assert await a.lines(b"n2 NOOP") == [b"* 1 EXPUNGE", b"* 2 EXPUNGE", b"n2 OK NOOP completed"]
    assert (
        await a.send(b"f1 FETCH 1:* (UID)")
        == b"* 1 FETCH (UID 2)\r\n* 2 FETCH (UID 4)\r\nf1 OK FETCH completed\r\n"
    )


async def test_expunges_wait_during_fetch_store_and_search(client: MakeClient, mailbox: Mailbox) -> None:
    for n in range(1, 4):
        mailbox.deliver("INBOX", message(n))
    c = await selected(client)
    mailbox.remove("INBOX", [1])
    mailbox.deliver("INBOX", message(4))
    # New mail may be told during FETCH; the expunge may not (RFC 9051 §7.4.1).
    out = await c.lines(b"f1 FETCH 3 (UID)")
    assert out == [b"* 3 FETCH (UID 3)", b"* 4 EXISTS", b"* 4 RECENT", b"f1 OK FETCH completed"]
    assert await c.lines(b"s1 SEARCH ALL") == [b"* SEARCH 1 2 3 4", b"s1 OK SEARCH completed"]
    assert (await c.lines(b"s2 STORE 2 +FLAGS.SILENT (\\Seen)"))[-1] == b"s2 OK STORE completed"
    assert await c.lines(b"n1 NOOP") == [b"* 1 EXPUNGE", b"n1 OK NOOP completed"]
    assert await c.send(b"s3 SEARCH ALL") == b"* SEARCH 1 2 3\r\ns3 OK SEARCH completed\r\n"


async def test_changes_of_other_sessions_in_idle_with_qresync(client: MakeClient, mailbox: Mailbox) -> None:
    for n in range(1, 4):
        mailbox.deliver("INBOX", message(n))
    c = await client()
    await c.login()
    await c.send(b"e1 ENABLE QRESYNC")
    await c.select()
    await c.send(b"i1 IDLE")
    mailbox.set_flags("INBOX", 1, 4)
    mailbox.remove("INBOX", [2])
    await c.settle()
    top = mailbox.folders["INBOX"].highestmodseq
    assert (
        c.wire.take()
        == b"* VANISHED 2\r\n* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) MODSEQ (%d))\r\n" % (top - 1)
    )


async def test_keepalive_and_polling_for_other_processes(client: MakeClient, mailbox: Mailbox) -> None:
    c = await selected(client, idle_keepalive=0.05, poll_interval=60, poll_every=lambda: 0.05)
    await c.send(b"i1 IDLE")
    # A change by another process: no notification reaches this one, the poll finds it.
    folder = mailbox.folders["INBOX"]
    watchers = mailbox.watchers.pop(folder.id)
    mailbox.deliver("INBOX", message(1))
    mailbox.watchers[folder.id] = watchers
    await asyncio.sleep(0.2)
    await c.settle()
    out = c.wire.take()
    assert b"* 1 EXISTS\r\n" in out and b"* OK Still here\r\n" in out
    assert await c.send(b"DONE") == b"i1 OK IDLE terminated\r\n"


async def test_idle_logs_out_after_the_authenticated_timeout(client: MakeClient) -> None:
    c = await selected(client, auth_timeout=0.1, idle_keepalive=10)
    await c.send(b"i1 IDLE")
    await asyncio.wait_for(c.task, 2)
    assert c.wire.take() == b"* BYE Disconnected for inactivity\r\n"


@pytest.mark.parametrize(
    ("moved", "bye"),
    [
        (False, b"* BYE Selected mailbox was deleted, have to disconnect\r\n"),
        # The folder vanished because the whole mailbox moved (whichever watch saw it first): the
        # client is told to reconnect, not that its folder was deleted.
        (True, b"* BYE [UNAVAILABLE] mailbox moved, please reconnect\r\n"),
    ],
)
async def test_selected_mailbox_gone_elsewhere_ends_the_session(
    client: MakeClient, mailbox: Mailbox, moved: bool, bye: bytes
) -> None:
    a = await client()
    await a.login()
    await a.send(b"c1 CREATE Shared")
    await a.select(b"Shared")
    b = await client()
    await b.login()
    mailbox.moved_away = moved
    await b.send(b"d1 DELETE Shared")
    assert await a.send(b"n1 NOOP") == bye + b"n1 OK NOOP completed\r\n"
    await asyncio.wait_for(a.task, 1)
