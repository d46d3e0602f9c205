"""APPEND: APPENDUID, flags and date, literals (synchronising, LITERAL+), limits, TRYCREATE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from tests.unit.proto.imap.session.conftest import SIMPLE, MakeClient
from tests.unit.proto.imap.session.fakestore import Mailbox


async def test_append_with_flags_and_date(client: MakeClient, mailbox: Mailbox) -> None:
    c = await client()
    await c.login()
    assert await c.send(
        b'a1 APPEND Drafts (\\Draft $Todo) "05-Nov-2026 14:30:00 +0100" {%d}' % len(SIMPLE)
    ) == (b"+ Ready for literal data\r\n")
    validity = mailbox.folders["Drafts"].uidvalidity
    assert await c.send(SIMPLE + b"\r\n") == b"a1 OK [APPENDUID %d 1] APPEND completed\r\n" % validity
    stored = mailbox.folders["Drafts"].messages[1]
    assert stored.flags == 16 and stored.keywords == ("$Todo",)
    assert stored.internaldate == datetime(2026, 11, 5, 14, 30, tzinfo=timezone(timedelta(hours=1)))
    assert mailbox.blobs[stored.digest] == SIMPLE


async def test_append_with_literal_plus_in_one_go(client: MakeClient, mailbox: Mailbox) -> None:
    c = await client()
    await c.login()
    out = await c.send(b"a1 APPEND INBOX {%d+}\r\n%s\r\n" % (len(SIMPLE), SIMPLE))
    assert out.startswith(b"a1 OK [APPENDUID ")
    assert mailbox.folders["INBOX"].messages[1].internaldate.tzinfo is UTC  # the store's default


async def test_append_to_a_missing_mailbox_and_empty_messages(client: MakeClient) -> None:
    c = await client()
    await c.login()
    assert await c.send(b"a1 APPEND Nope {2+}\r\nhi\r\n") == b"a1 NO [TRYCREATE] Mailbox does not exist\r\n"
    assert await c.send(b"a2 APPEND INBOX {0+}\r\n\r\n") == b"a2 NO Cannot store an empty message\r\n"
    assert (await c.send(b"a3 APPEND INBOX (\\Bogus) {2+}\r\nhi\r\n")).startswith(b"a3 BAD")


async def test_append_limit_refuses_before_the_literal(client: MakeClient) -> None:
    c = await client(append_limit=100)
    login = await c.login()
    assert b"APPENDLIMIT=100" in login
    assert await c.send(b"a1 APPEND INBOX {101}") == b"a1 NO [TOOBIG] Message too large\r\n"
    assert await c.send(b"a2 NOOP") == b"a2 OK NOOP completed\r\n"


async def test_no_big_literals_before_login(client: MakeClient) -> None:
    c = await client()
    assert await c.send(b"a1 APPEND INBOX {1000000}") == b"a1 NO [TOOBIG] Message too large\r\n"


async def test_append_to_the_selected_mailbox_shows_exists(client: MakeClient, mailbox: Mailbox) -> None:
    c = await client()
    await c.login()
    await c.select()
    out = await c.send(b"a1 APPEND INBOX {%d+}\r\n%s\r\n" % (len(SIMPLE), SIMPLE))
    assert out.startswith(b"* 1 EXISTS\r\n* 1 RECENT\r\na1 OK [APPENDUID ")
