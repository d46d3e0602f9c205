"""The HTTP proxy's decisions without sockets: Basic credentials, port 80, headers, logins, paths."""

from __future__ import annotations

import base64
from typing import Any, cast

import httpx
import pytest

from courriel.clientaccess.http import (
    BasicLogin,
    Port80,
    basic_credentials,
    forwarded_headers,
    has_body,
    plain_endpoint,
    port80,
    returned_headers,
)
from courriel.clientaccess.locator import Endpoint
from courriel.org.model import AcceptedDomain, Recipient, RecipientKind
from courriel.org.snapshot import DirectorySnapshot
from courriel.security.passwords import hash_password
from courriel.security.throttle import LoginThrottle
from courriel.services.http.applications import ACTIVESYNC, AUTODISCOVER, EWS, OWA, match
from courriel.services.http.identity import AUTHENTICATED_USER, header


def scope(headers: list[tuple[bytes, bytes]], scheme: str = "https") -> dict[str, Any]:
    return {"type": "http", "headers": headers, "scheme": scheme, "client": ("192.0.2.7", 50000)}


def basic(text: str) -> tuple[bytes, bytes]:
    return (b"authorization", b"Basic " + base64.b64encode(text.encode()))


# ---- RFC 7617 -------------------------------------------------------------------------------------


def test_basic_credentials_split_at_the_first_colon() -> None:
    assert basic_credentials(scope([basic("alice@example.test:pa:ss wörd")])) == (
        "alice@example.test",
        "pa:ss wörd",
    )


def test_the_scheme_name_is_case_insensitive() -> None:
    token = base64.b64encode(b"alice:secret")
    assert basic_credentials(scope([(b"authorization", b"bAsIc " + token)])) == ("alice", "secret")


@pytest.mark.parametrize(
    "value",
    [
        b"Basic " + base64.b64encode(b"no-colon"),
        b"Basic " + base64.b64encode(b":password-without-user"),
        b"Basic !!!not base64!!!",
        b"Basic " + base64.b64encode(b"\xff\xfe:latin-1 garbage"),
        b"Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag",
        b"Bearer abc",
    ],
)
def test_unusable_authorization_is_no_credentials(value: bytes) -> None:
    assert basic_credentials(scope([(b"authorization", value)])) is None


def test_no_authorization_header() -> None:
    assert basic_credentials(scope([(b"host", b"mail.example.test")])) is None


# ---- port 80 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "action"),
    [
        ("/", Port80.REDIRECT),
        ("/owa", Port80.REDIRECT),
        ("/OWA/?ae=Item", Port80.REDIRECT),
        ("/autodiscover/autodiscover.xml", Port80.REDIRECT),
        ("/owa/calendar/alice@example.test/abc/calendar.ics", Port80.PROXY_ANONYMOUS),
        ("/owa/calendar/", Port80.REDIRECT),  # no mailbox named: not a published calendar
        ("/EWS/Exchange.asmx", Port80.REFUSE),
        ("/ecp/", Port80.REFUSE),
        ("/Microsoft-Server-ActiveSync", Port80.REFUSE),
        ("/OAB/", Port80.REFUSE),
        ("/mapi/emsmdb", Port80.REFUSE),
        ("/rpc/rpcproxy.dll", Port80.REFUSE),
        ("/favicon.ico", Port80.NOT_FOUND),
        ("/owafake/", Port80.NOT_FOUND),
    ],
)
def test_port_80_policy(path: str, action: Port80) -> None:
    assert port80(match(path), path) is action


# ---- application paths ---------------------------------------------------------------------------


def test_paths_match_applications_whatever_the_case() -> None:
    found = match("/ews/exchange.asmx")
    assert found is not None and found.application is EWS and found.path == "/EWS/exchange.asmx"
    found = match("/microsoft-server-activesync")
    assert (
        found is not None and found.application is ACTIVESYNC and found.path == "/Microsoft-Server-ActiveSync"
    )
    found = match("/AutoDiscover/")
    assert found is not None and found.application is AUTODISCOVER and found.path == "/Autodiscover/"
    assert match("/") is None and match("/owa.evil/") is None


def test_published_calendars_name_their_mailbox() -> None:
    found = match("/owa/Calendar/alice@example.test/f00d/calendar.html")
    assert found is not None and found.application is OWA
    assert found.calendar and found.publisher == "alice@example.test"
    inbox = match("/owa/inbox/alice@example.test")
    assert inbox is not None and not inbox.calendar and inbox.publisher is None


# ---- headers -------------------------------------------------------------------------------------


def test_forwarded_headers_drop_hop_by_hop_credentials_and_claims() -> None:
    alice = Recipient(
        1, RecipientKind.MAILBOX, "Alice", "alice@example.test", ("alice@example.test",), "DB01", "g-1"
    )
    headers = forwarded_headers(
        scope(
            [
                (b"host", b"mail.example.test"),
                basic("alice:secret"),
                (b"connection", b"keep-alive, X-Secret-Hop"),
                (b"keep-alive", b"timeout=5"),
                (b"x-secret-hop", b"1"),
                (b"te", b"trailers"),
                (b"transfer-encoding", b"chunked"),
                (b"upgrade", b"websocket"),
                (b"proxy-authorization", b"Basic eA=="),
                (b"x-courriel-authenticated-user", b"bob@example.test"),
                (b"X-Courriel-Mailbox-Guid".lower(), b"g-2"),
                (b"x-forwarded-for", b"10.0.0.1"),
                (b"expect", b"100-continue"),
                (b"content-type", b"text/xml"),
                (b"cookie", b"a=1"),
                (b"cookie", b"b=2"),
            ]
        ),
        alice,
    )
    assert headers == [
        (b"content-type", b"text/xml"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
        (AUTHENTICATED_USER.encode(), b"alice@example.test"),
        (b"X-Courriel-Mailbox-Guid", b"g-1"),
        (b"x-forwarded-for", b"192.0.2.7"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"mail.example.test"),
    ]


def test_anonymous_requests_carry_no_identity() -> None:
    headers = forwarded_headers(
        scope([(b"x-courriel-authenticated-user", b"bob@example.test")], "http"), None
    )
    assert [key for key, _ in headers] == [b"x-forwarded-for", b"x-forwarded-proto"]


def test_returned_headers_drop_hop_by_hop_and_our_own_date() -> None:
    response = httpx.Response(
        200,
        headers=[
            ("Transfer-Encoding", "chunked"),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Content-Type", "application/json"),
        ],
    )
    assert returned_headers(response) == [
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"content-type", b"application/json"),
    ]


def test_a_body_is_announced_by_length_or_chunking() -> None:
    assert has_body(scope([(b"content-length", b"12")]))
    assert has_body(scope([(b"transfer-encoding", b"chunked")]))
    assert not has_body(scope([(b"content-length", b"0")]))
    assert not has_body(scope([]))


def test_a_repeated_identity_header_is_no_identity() -> None:
    twice = scope([(b"x-courriel-authenticated-user", b"a@x"), (b"x-courriel-authenticated-user", b"b@x")])
    assert header(twice, AUTHENTICATED_USER) is None
    assert header(scope([(b"x-courriel-authenticated-user", b"a@x")]), AUTHENTICATED_USER) == "a@x"


def test_the_plain_back_end_port_keeps_the_servers_offset() -> None:
    assert plain_endpoint(Endpoint("MBX1", "127.0.0.2", 10444)) == Endpoint("MBX1", "127.0.0.2", 10081)
    assert plain_endpoint(Endpoint("MBX1", "mbx1", 444)).port == 81


# ---- logins --------------------------------------------------------------------------------------

PASSWORD_HASH = hash_password("secret")


class Directory:
    """What DirectoryLogin.find reads of a snapshot."""

    def __init__(self, *recipients: Recipient) -> None:
        self.by_address = {a.casefold(): r for r in recipients for a in r.addresses}

    def recipient(self, address: str) -> Recipient | None:
        return self.by_address.get(address.casefold())

    def default_domain(self) -> AcceptedDomain:
        return AcceptedDomain("example.test", default=True)


def mailbox(
    address: str, database: str | None = "DB01", kind: RecipientKind = RecipientKind.MAILBOX
) -> Recipient:
    return Recipient(
        1, kind, address, address, (address, "alias@example.test"), database, "g-1", PASSWORD_HASH
    )


def login(*recipients: Recipient, throttle: LoginThrottle | None = None) -> tuple[BasicLogin, list[float]]:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    directory = Directory(*recipients)
    gate = BasicLogin(
        lambda: cast(DirectorySnapshot, directory),
        throttle if throttle is not None else LoginThrottle(),
        sleep=sleep,
    )
    return gate, slept


async def test_a_mailbox_logs_in_by_any_address_or_bare_local_part() -> None:
    gate, _ = login(mailbox("alice@example.test"))
    for name in ("alice@example.test", "ALICE@example.test", "alias@example.test", "alice"):
        found = await gate.verify("192.0.2.7", name, "secret")
        assert found is not None and found.primary_address == "alice@example.test", name


async def test_wrong_passwords_are_counted_and_delayed_then_blocked() -> None:
    throttle = LoginThrottle(max_failures=2, base_delay=1.0, max_delay=4.0)
    gate, slept = login(mailbox("alice@example.test"), throttle=throttle)
    assert await gate.verify("192.0.2.7", "alice@example.test", "nope") is None
    assert await gate.verify("192.0.2.7", "alice@example.test", "nope") is None
    assert slept == [1.0, 2.0]
    # Blocked now: even the right password is refused, without a check.
    assert await gate.verify("192.0.2.7", "alice@example.test", "secret") is None
    assert throttle.blocked("192.0.2.7", "alice@example.test")


async def test_only_mailboxes_in_a_database_log_in() -> None:
    gate, _ = login(
        mailbox("nodb@example.test", database=None),
        mailbox("group@example.test", kind=RecipientKind.GROUP),
    )
    assert await gate.verify("192.0.2.7", "nodb@example.test", "secret") is None
    assert await gate.verify("192.0.2.7", "group@example.test", "secret") is None
    assert await gate.verify("192.0.2.7", "nobody@example.test", "secret") is None
