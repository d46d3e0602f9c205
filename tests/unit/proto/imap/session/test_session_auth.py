"""Greeting, CAPABILITY, LOGIN, AUTHENTICATE PLAIN, STARTTLS, ENABLE, ID, NAMESPACE, LOGOUT, states."""

from __future__ import annotations

import asyncio
import base64

from tests.unit.proto.imap.session.conftest import MakeClient
from tests.unit.proto.imap.session.fakestore import FakeAuthenticator


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


async def test_greeting_lists_capabilities_and_secure_login_hides_plain(client: MakeClient) -> None:
    c = await client(tls_active=False, plaintext_auth=False)
    assert c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
    assert b"STARTTLS" in c.greeting and b"LOGINDISABLED" in c.greeting
    assert b"AUTH=PLAIN" not in c.greeting and b"SASL-IR" not in c.greeting


async def test_capability_after_login_lists_the_extensions(client: MakeClient) -> None:
    c = await client()
    out = await c.send(b"a1 CAPABILITY")
    assert b"AUTH=PLAIN" in out and b"STARTTLS" not in out  # TLS is active already
    login = await c.login()
    assert login.startswith(b"L1 OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
    for cap in (
        b"IDLE",
        b"MOVE",
        b"UIDPLUS",
        b"CONDSTORE",
        b"QRESYNC",
        b"ESEARCH",
        b"SPECIAL-USE",
        b"APPENDLIMIT=",
    ):
        assert cap in login
    assert b"AUTH=PLAIN" not in login


async def test_login_before_tls_is_refused_with_privacyrequired(
    client: MakeClient, authenticator: FakeAuthenticator
) -> None:
    c = await client(tls_active=False, plaintext_auth=False)
    assert await c.send(b"a1 LOGIN alice secret") == (
        b"a1 NO [PRIVACYREQUIRED] Plaintext authentication is disallowed before TLS\r\n"
    )
    out = await c.send(b"a2 AUTHENTICATE PLAIN " + b64("\0alice\0secret"))
    assert out.startswith(b"a2 NO [PRIVACYREQUIRED]")
    assert authenticator.attempts == []  # the password never reached the check


async def test_plaintext_login_type_accepts_login_without_tls(client: MakeClient) -> None:
    c = await client(tls_active=False, plaintext_auth=True)
    assert b"AUTH=PLAIN" in c.greeting and b"LOGINDISABLED" not in c.greeting
    await c.login()


async def test_starttls_upgrades_and_drops_pipelined_plaintext(client: MakeClient) -> None:
    c = await client(tls_active=False, plaintext_auth=False)
    # CVE-2011-0411: a command smuggled behind STARTTLS must never run after the handshake.
    out = await c.send(b"a1 STARTTLS\r\na2 LOGIN alice secret\r\n")
    assert out == b"a1 OK Begin TLS negotiation now\r\n"
    assert c.wire.tls_started
    out = await c.send(b"a3 CAPABILITY")
    assert b"AUTH=PLAIN" in out and b"STARTTLS" not in out and b"LOGINDISABLED" not in out
    await c.login()
    assert (await c.send(b"a4 STARTTLS")).startswith(b"a4 BAD")


async def test_failed_handshake_ends_the_session(client: MakeClient) -> None:
    c = await client(tls_active=False)
    c.wire.tls_ok = False
    await c.send(b"a1 STARTTLS")
    await asyncio.wait_for(c.task, 1)
    assert c.wire.closed


async def test_wrong_password_is_refused_and_three_failures_close(client: MakeClient) -> None:
    c = await client()
    for tag in (b"a1", b"a2"):
        assert (
            await c.send(tag + b" LOGIN alice wrong")
            == tag + b" NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
        )
    out = await c.send(b"a3 LOGIN alice wrong")
    assert (
        out
        == b"a3 NO [AUTHENTICATIONFAILED] Authentication failed\r\n* BYE Too many failed login attempts\r\n"
    )
    await asyncio.wait_for(c.task, 1)


async def test_authenticate_plain_with_initial_response(client: MakeClient) -> None:
    c = await client()
    out = await c.send(b"a1 AUTHENTICATE PLAIN " + b64("\0alice\0secret"))
    assert out.startswith(b"a1 OK [CAPABILITY ") and out.endswith(b"] Logged in\r\n")


async def test_authenticate_plain_with_continuation(client: MakeClient) -> None:
    c = await client()
    assert await c.send(b"a1 AUTHENTICATE PLAIN") == b"+ \r\n"
    out = await c.send(b64("alice\0alice\0secret"))
    assert out.startswith(b"a1 OK [CAPABILITY ")


async def test_authenticate_cancel_bad_base64_and_other_identity(client: MakeClient) -> None:
    c = await client()
    await c.send(b"a1 AUTHENTICATE PLAIN")
    assert await c.send(b"*") == b"a1 BAD Authentication cancelled\r\n"
    await c.send(b"a2 AUTHENTICATE PLAIN")
    assert (await c.send(b"%%%")).startswith(b"a2 BAD")
    out = await c.send(b"a3 AUTHENTICATE PLAIN " + b64("bob\0alice\0secret"))
    assert out.startswith(b"a3 NO [AUTHORIZATIONFAILED]")
    assert (await c.send(b"a4 AUTHENTICATE CRAM-MD5")).startswith(b"a4 NO")
    await c.login()


async def test_commands_outside_their_state_get_bad(client: MakeClient) -> None:
    c = await client()
    assert await c.send(b"a1 SELECT INBOX") == b"a1 BAD Command not valid in the not authenticated state\r\n"
    assert (await c.send(b"a2 FETCH 1 FLAGS")).startswith(b"a2 BAD")
    await c.login()
    assert (await c.send(b"a3 LOGIN alice secret")).startswith(b"a3 BAD")
    assert (await c.send(b"a4 FETCH 1 FLAGS")).startswith(
        b"a4 BAD Command not valid in the authenticated state"
    )
    await c.select()
    assert (await c.send(b"a5 ENABLE CONDSTORE")).startswith(b"a5 BAD")  # RFC 5161 §3.1


async def test_enable_reports_what_it_turned_on(client: MakeClient) -> None:
    c = await client()
    await c.login()
    out = await c.send(b"a1 ENABLE QRESYNC X-UNKNOWN utf8=accept")
    assert out == b"* ENABLED QRESYNC UTF8=ACCEPT\r\na1 OK ENABLE completed\r\n"
    assert await c.send(b"a2 ENABLE QRESYNC") == b"* ENABLED\r\na2 OK ENABLE completed\r\n"
    assert c.session.condstore  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE


async def test_id_namespace_noop_and_logout(client: MakeClient) -> None:
    c = await client()
    out = await c.send(b'a1 ID ("name" "mutt" "version" "2.2")')
    assert out == b'* ID ("name" "Courriel")\r\na1 OK ID completed\r\n'
    await c.login()
    assert await c.send(b"a2 NAMESPACE") == b'* NAMESPACE (("" "/")) NIL NIL\r\na2 OK NAMESPACE completed\r\n'
    assert await c.send(b"a3 NOOP") == b"a3 OK NOOP completed\r\n"
    assert await c.send(b"a4 LOGOUT") == b"* BYE Logging out\r\na4 OK Logout completed\r\n"
    await asyncio.wait_for(c.task, 1)
    assert c.wire.closed
    assert c.session.account is None  # released


async def test_release_happens_when_the_peer_vanishes(
    client: MakeClient, authenticator: FakeAuthenticator
) -> None:
    c = await client()
    await c.login()
    await c.close()
    assert authenticator.accounts[0].released


async def test_pre_auth_timeout_says_bye(client: MakeClient) -> None:
    c = await client(pre_auth_timeout=0.05)
    await asyncio.wait_for(c.task, 2)
    assert c.wire.take() == b"* BYE Disconnected for inactivity\r\n"


async def test_authenticated_timeout_says_bye(client: MakeClient) -> None:
    c = await client(auth_timeout=0.05)
    await c.login()
    await asyncio.wait_for(c.task, 2)
    assert c.wire.take() == b"* BYE Disconnected for inactivity\r\n"


async def test_shutdown_says_bye(client: MakeClient) -> None:
    c = await client()
    c.session.shutdown()
    await asyncio.wait_for(c.task, 1)
    assert c.wire.take() == b"* BYE Server shutting down\r\n"


async def test_pipelined_commands_are_answered_in_one_write(client: MakeClient) -> None:
    c = await client()
    await c.login()
    writes = c.wire.writes
    out = await c.send(b"p1 NOOP\r\np2 NOOP\r\np3 CAPABILITY\r\n")
    assert out.count(b" OK ") == 3
    assert c.wire.writes == writes + 1
