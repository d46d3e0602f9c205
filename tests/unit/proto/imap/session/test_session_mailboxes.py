"""LIST (with LIST-EXTENDED, LIST-STATUS, SPECIAL-USE, CHILDREN), LSUB, CREATE, DELETE, RENAME,
SUBSCRIBE, STATUS, and mailbox names in modified UTF-7 and UTF-8."""

from __future__ import annotations

from tests.unit.proto.imap.session.conftest import Client, MakeClient, message
from tests.unit.proto.imap.session.fakestore import Mailbox


async def logged_in(client: MakeClient) -> Client:
    c = await client()
    await c.login()
    return c


async def test_list_all_with_special_use_and_children(client: MakeClient) -> None:
    c = await logged_in(client)
    assert await c.send(b"c1 CREATE Projects/2026/Q4") == b"c1 OK CREATE completed\r\n"
    out = await c.lines(b'l1 LIST "" "*"')
    assert out == [
        b'* LIST (\\HasNoChildren) "/" INBOX',
        b'* LIST (\\HasNoChildren \\Trash) "/" "Deleted Items"',
        b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        b'* LIST (\\HasNoChildren \\Junk) "/" "Junk Email"',
        b'* LIST (\\HasChildren) "/" Projects',
        b'* LIST (\\HasChildren) "/" Projects/2026',
        b'* LIST (\\HasNoChildren) "/" Projects/2026/Q4',
        b'* LIST (\\HasNoChildren \\Sent) "/" "Sent Items"',
        b"l1 OK LIST completed",
    ]


async def test_list_percent_stops_at_the_separator_and_reference_is_joined(client: MakeClient) -> None:
    c = await logged_in(client)
    await c.send(b"c1 CREATE Projects/2026/Q4")
    out = await c.lines(b'l1 LIST "" "%"')
    assert b'* LIST (\\HasChildren) "/" Projects' in out and not any(b"2026" in line for line in out)
    out = await c.lines(b'l2 LIST "Projects/" "%"')
    assert out == [b'* LIST (\\HasChildren) "/" Projects/2026', b"l2 OK LIST completed"]
    out = await c.lines(b'l3 LIST "" "inbox"')
    assert out == [b'* LIST (\\HasNoChildren) "/" INBOX', b"l3 OK LIST completed"]


async def test_list_empty_pattern_gives_the_delimiter(client: MakeClient) -> None:
    c = await logged_in(client)
    assert await c.send(b'l1 LIST "" ""') == b'* LIST (\\Noselect) "/" ""\r\nl1 OK LIST completed\r\n'


async def test_list_extended_subscribed_and_recursivematch(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client)
    await c.send(b"c1 CREATE Archive/2025")
    await c.send(b"s1 SUBSCRIBE Archive/2025")
    await c.send(b"s2 SUBSCRIBE Gone/Away")  # a subscription to a name that does not exist
    out = await c.lines(b'l1 LIST (SUBSCRIBED) "" "*"')
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" Archive/2025' in out
    assert b'* LIST (\\NonExistent \\Subscribed) "/" Gone/Away' in out
    assert not any(b'"/" Archive\r' in line or line.endswith(b'"/" Archive') for line in out)
    out = await c.lines(b'l2 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert b'* LIST (\\HasChildren) "/" Archive ("CHILDINFO" ("SUBSCRIBED"))' in out
    assert b'* LIST (\\NonExistent) "/" Gone ("CHILDINFO" ("SUBSCRIBED"))' in out
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX' in out
    await c.send(b"s3 SUBSCRIBE Archive")
    out = await c.lines(b'l3 LIST (SUBSCRIBED RECURSIVEMATCH) "" "Arch%"')
    assert out == [
        b'* LIST (\\HasChildren \\Subscribed) "/" Archive ("CHILDINFO" ("SUBSCRIBED"))',
        b"l3 OK LIST completed",
    ]


async def test_list_special_use_selection_and_several_patterns(client: MakeClient) -> None:
    c = await logged_in(client)
    out = await c.lines(b'l1 LIST (SPECIAL-USE) "" "*"')
    assert [line.split(b")")[0] for line in out[:-1]] == [
        b"* LIST (\\HasNoChildren \\Trash",
        b"* LIST (\\HasNoChildren \\Drafts",
        b"* LIST (\\HasNoChildren \\Junk",
        b"* LIST (\\HasNoChildren \\Sent",
    ]
    out = await c.lines(b'l2 LIST "" (INBOX Drafts) RETURN (CHILDREN SPECIAL-USE)')
    assert out == [
        b'* LIST (\\HasNoChildren) "/" INBOX',
        b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        b"l2 OK LIST completed",
    ]


async def test_list_status_returns_counters(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client)
    mailbox.deliver("INBOX", message(1))
    mailbox.deliver("INBOX", message(2), flags=1)
    out = await c.lines(b'l1 LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT SIZE))')
    size = len(message(1)) + len(message(2))
    assert out == [
        b'* LIST (\\HasNoChildren) "/" INBOX',
        b"* STATUS INBOX (MESSAGES 2 UNSEEN 1 UIDNEXT 3 SIZE %d)" % size,
        b"l1 OK LIST completed",
    ]


async def test_lsub_lists_subscriptions_with_noselect_parents(client: MakeClient) -> None:
    c = await logged_in(client)
    await c.send(b"c1 CREATE Lists/imap")
    await c.send(b"s1 SUBSCRIBE Lists/imap")
    out = await c.lines(b'l1 LSUB "" "*"')
    assert b'* LSUB () "/" Lists/imap' in out and b'* LSUB () "/" INBOX' in out
    out = await c.lines(b'l2 LSUB "" "L%"')
    assert out == [b'* LSUB (\\Noselect) "/" Lists', b"l2 OK LSUB completed"]
    await c.send(b"u1 UNSUBSCRIBE Lists/imap")
    assert await c.lines(b'l3 LSUB "" "Lists/*"') == [b"l3 OK LSUB completed"]


async def test_create_delete_rename_with_response_codes(client: MakeClient) -> None:
    c = await logged_in(client)
    assert await c.send(b"c1 CREATE INBOX") == b"c1 NO [ALREADYEXISTS] Mailbox already exists\r\n"
    assert await c.send(b"c2 CREATE Work/") == b"c2 OK CREATE completed\r\n"
    assert await c.send(b"c3 CREATE Work") == b"c3 NO [ALREADYEXISTS] Mailbox already exists\r\n"
    assert (await c.send(b'c4 CREATE "a/*"')).startswith(b"c4 NO [CANNOT]")
    assert await c.send(b"c5 CREATE Kept (USE (\\Archive))") == b"c5 OK CREATE completed\r\n"
    assert b'(\\HasNoChildren \\Archive) "/" Kept' in await c.send(b'l1 LIST "" Kept')
    assert (await c.send(b"c6 CREATE Two (USE (\\Archive \\Junk))")).startswith(b"c6 NO [USEATTR]")
    assert await c.send(b"r1 RENAME Work Job") == b"r1 OK RENAME completed\r\n"
    assert (await c.send(b"r2 RENAME Nope Other")).startswith(b"r2 NO [NONEXISTENT]")
    assert await c.send(b"d1 DELETE Job") == b"d1 OK DELETE completed\r\n"
    assert (await c.send(b"d2 DELETE Job")).startswith(b"d2 NO [NONEXISTENT]")
    assert (await c.send(b"d3 DELETE INBOX")).startswith(b"d3 NO [CANNOT]")


async def test_deleting_the_selected_mailbox_returns_to_authenticated(client: MakeClient) -> None:
    c = await logged_in(client)
    await c.send(b"c1 CREATE Temp")
    await c.select(b"Temp")
    out = await c.send(b"d1 DELETE Temp")
    assert out == b"* OK [CLOSED] Selected mailbox was deleted\r\nd1 OK DELETE completed\r\n"
    assert (await c.send(b"f1 FETCH 1 FLAGS")).startswith(b"f1 BAD")


async def test_status(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client)
    mailbox.deliver("INBOX", message(1), flags=8)
    out = await c.send(
        b"s1 STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED HIGHESTMODSEQ APPENDLIMIT)"
    )
    uidvalidity = mailbox.folders["INBOX"].uidvalidity
    assert out == (
        b"* STATUS INBOX (MESSAGES 1 RECENT 1 UIDNEXT 2 UIDVALIDITY %d UNSEEN 1 DELETED 1 HIGHESTMODSEQ 2 "
        b"APPENDLIMIT 52428800)\r\ns1 OK STATUS completed\r\n" % uidvalidity
    )
    assert (await c.send(b"s2 STATUS Nope (MESSAGES)")).startswith(b"s2 NO [NONEXISTENT]")
    assert (await c.send(b"s3 STATUS INBOX (BOGUS)")).startswith(b"s3 BAD")


async def test_modified_utf7_names_round_trip(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client)
    assert await c.send(b"c1 CREATE &AMk-t&AOk-") == b"c1 OK CREATE completed\r\n"
    assert "Été" in mailbox.folders
    assert b'"/" &AMk-t&AOk-\r\n' in await c.send(b'l1 LIST "" "&AMk-*"')
    await c.send(b"c2 CREATE Tom&-Jerry")
    assert "Tom&Jerry" in mailbox.folders


async def test_utf8_names_after_enable(client: MakeClient, mailbox: Mailbox) -> None:
    c = await logged_in(client)
    await c.send(b"e1 ENABLE UTF8=ACCEPT")
    assert await c.send('c1 CREATE "Été"'.encode()) == b"c1 OK CREATE completed\r\n"
    assert "Été" in mailbox.folders
    assert '"/" "Été"\r\n'.encode() in await c.send(b'l1 LIST "" "*"')
