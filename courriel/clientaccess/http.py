"""The Client Access HTTP proxy: 443 (TLS) and 80, to the HTTP back end of the user's Mailbox server.

Exchange's front end authenticates the client, finds the Mailbox server holding the active copy of
the user's database and proxies the request to its back-end site (444; 81 for plain HTTP), saying
who the user is instead of passing the credentials on (research/exchange2013-facts.md §3). Here:

- authentication is HTTP Basic (RFC 7617) over TLS only, against the directory's argon2id
  passwords with the login throttle every protocol shares; a missing or wrong credential gets
  401 with `WWW-Authenticate: Basic realm=…, charset="UTF-8"` (RFC 9110 §11.6.1);
- routing goes recipient → database → Mailbox server (locator.py) → its back end, 444 over TLS
  presenting the organization certificate (security/orgca.py), which is what lets the back end
  believe the `X-Courriel-Authenticated-User` header we add (services/http/identity.py);
- the request (method, path, query, headers minus hop-by-hop ones, RFC 9110 §7.6.1) and its body
  stream to the back end and the answer streams back, never held whole;
- a back end that cannot be reached, or does not answer in time, gives 503 with Retry-After
  (RFC 9110 §15.6.4): every wait is bounded (`TIMEOUTS`);
- connections to the back ends leave from this server's own address (`SourcedTransport`), the
  one the organization's firewall rules know it by.

Port 80 (`Port80`) follows Exchange's defaults. Credentials never cross it: /owa is redirected to
https (what the seed lists, and what Exchange's documented IIS redirect does); Autodiscover is
answered with the redirect of MS-OXDISCO §3.1.5.2 ("HTTP redirect method": the fallback for a
client that could not reach 443 under the name it tried, which then asks the user before it
sends credentials to the target); published calendars are served anonymously, proxied to the back
end's port 81; the other applications (ecp, EWS, ActiveSync, OAB, mapi, rpc) answer 403 as their
"Require SSL" virtual directories do in IIS (403.4): their clients are programs that would either
lose a POST body or silently resend credentials after a redirect, so they are told, not moved.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from enum import Enum

import httpx
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from courriel.clientaccess.locator import BackendLocator, Endpoint, backend_port
from courriel.core.ports import offset_port
from courriel.org.model import Recipient, RecipientKind
from courriel.org.snapshot import DirectorySnapshot
from courriel.security.throttle import LoginThrottle
from courriel.services.http.applications import AUTODISCOVER, OWA, Match, match
from courriel.services.http.identity import AUTHENTICATED_USER, MAILBOX_GUID, PREFIX
from courriel.services.logins import PasswordLogin
from courriel.transport.deliver.source import source_address

log = logging.getLogger(__name__)

BACKEND = "http-backend"
RETRY_AFTER = 30  # seconds, in 503 answers
# Connecting includes the TLS handshake. Reading waits between two bytes of the answer: an
# ActiveSync Ping may legitimately stay silent for its whole heartbeat, up to 3540 s
# (MS-ASCMD §2.2.3.79.1), so the read bound sits just above it.
TIMEOUTS = httpx.Timeout(connect=10.0, read=3600.0, write=60.0, pool=10.0)
MAX_BACKEND_CONNECTIONS = 1000

# RFC 9110 §7.6.1: connection-specific fields, never forwarded (plus those Connection names).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Never forwarded either: the back end learns the user from us, not from the password (Exchange
# passes a token, not credentials); we set Host and the X-Forwarded-* fields ourselves; Expect is
# answered by this server; the Date of our answer is ours.
NOT_FORWARDED = frozenset(
    {
        b"host",
        b"authorization",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
    }
)
NOT_RETURNED = frozenset({b"date", b"server"})

UNAUTHORIZED = "401 Unauthorized"
SSL_REQUIRED = "403.4 Forbidden: SSL is required to view this resource"
NOT_FOUND = "404 Not Found"
UNAVAILABLE = "503 Service Unavailable: the mailbox server is unavailable, try again later"


class ClientGone(Exception):
    """The client disconnected while its request body was being forwarded."""


def plain_endpoint(endpoint: Endpoint) -> Endpoint:
    """The back end's plain-HTTP port (81) on the server `endpoint` (its 444) is on: same offset."""
    offset = endpoint.port - backend_port(BACKEND)
    return replace(endpoint, port=offset_port(backend_port(BACKEND, tls=False), offset))


# ---- authentication ---------------------------------------------------------------------------


def basic_credentials(scope: Scope) -> tuple[str, str] | None:
    """(user-id, password) of an `Authorization: Basic` header (RFC 7617 §2), or None.

    The scheme name is case-insensitive (RFC 9110 §11.1); we announce charset="UTF-8", so the
    pair is decoded as UTF-8 (RFC 7617 §2.1); the user-id ends at the first colon.
    """
    for key, value in scope["headers"]:
        if key != b"authorization":
            continue
        scheme, _, token = value.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, colon, password = decoded.partition(":")
        return (user, password) if colon and user else None
    return None


def http_allowed(recipient: Recipient | None) -> Recipient | None:
    """The web applications serve mailboxes that live in a database (the per-application switches
    of Set-CASMailbox arrive with the applications)."""
    if recipient is None or recipient.kind is not RecipientKind.MAILBOX:
        return None
    if recipient.guid is None or recipient.database is None:
        return None
    return recipient


class BasicLogin(PasswordLogin):
    """Checks Basic credentials against the directory, as the IMAP4/POP3 logins do (PasswordLogin:
    the throttle, then an argon2id check that costs as much for an unknown name, the same names).

    HTTP logs in the mailboxes `http_allowed` serves, and a mailbox without a database is
    refused as an unknown name is; the protocol switches of IMAP4/POP3 are not consulted.
    Every HTTP request carries its credentials again: `averify_password` remembers a pair that
    verified, keyed by the stored hash, so the next requests cost no argon2 run and a password
    change ends that at once.
    """

    def __init__(
        self,
        snapshot: Callable[[], DirectorySnapshot],
        throttle: LoginThrottle,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(snapshot, throttle, "http", sleep=sleep)

    def candidate(self, recipient: Recipient) -> bool:
        return http_allowed(recipient) is not None


# ---- port 80 ----------------------------------------------------------------------------------


class Port80(Enum):
    """What plain HTTP does with a request (see the module docstring for why)."""

    PROXY_ANONYMOUS = "proxy"  # a published calendar
    REDIRECT = "redirect"  # to the same path over https
    REFUSE = "refuse"  # 403.4
    NOT_FOUND = "not-found"


def port80(found: Match | None, path: str) -> Port80:
    if found is None:
        return Port80.REDIRECT if path in ("", "/") else Port80.NOT_FOUND
    if found.calendar:
        return Port80.PROXY_ANONYMOUS
    if found.application in (OWA, AUTODISCOVER):
        return Port80.REDIRECT
    return Port80.REFUSE


# ---- the proxy --------------------------------------------------------------------------------


def forwarded_headers(scope: Scope, user: Recipient | None) -> list[tuple[bytes, bytes]]:
    """The request's headers for the back end: hop-by-hop and client-supplied identity removed,
    the authenticated user and the X-Forwarded-* fields added."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    named = {
        token.strip().lower() for key, value in headers if key == b"connection" for token in value.split(b",")
    }
    out = [
        (key, value)
        for key, value in headers
        if key not in HOP_BY_HOP
        and key not in named
        and key not in NOT_FORWARDED
        and not key.startswith(PREFIX.encode())
    ]
    if user is not None:
        out.append((AUTHENTICATED_USER.encode(), user.primary_address.encode()))
        out.append((MAILBOX_GUID.encode(), (user.guid or "").encode()))
    client = scope.get("client")
    if client:
        out.append((b"x-forwarded-for", str(client[0]).encode()))
    out.append((b"x-forwarded-proto", scope["scheme"].encode()))
    host = next((value for key, value in headers if key == b"host"), None)
    if host is not None:
        out.append((b"x-forwarded-host", host))
    return out


def returned_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    named = {token.strip().lower() for token in response.headers.get("connection", "").encode().split(b",")}
    return [
        (key.lower(), value)
        for key, value in response.headers.raw
        if key.lower() not in HOP_BY_HOP and key.lower() not in named and key.lower() not in NOT_RETURNED
    ]


def has_body(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"transfer-encoding" or (key == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


class ClientSide:
    """The client's half of a proxied exchange: its request body, then news of its leaving.

    ASGI tells an application that the client left only through `receive()`, which also carries
    the body; so the body is read first (`chunks`, for the back-end request) and only then does
    `gone` listen for the disconnect.
    """

    def __init__(self, receive: Receive, has_body: bool) -> None:
        self._receive = receive
        self._read = asyncio.Event()
        if not has_body:
            self._read.set()

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                self._read.set()
                return

    async def gone(self) -> None:
        """Returns when the client has disconnected."""
        await self._read.wait()
        while (await self._receive())["type"] != "http.disconnect":
            pass


class SourcedTransport(httpx.AsyncBaseTransport):
    """httpx's transport, with connections leaving from our own address of the back end's family.

    An httpx transport binds every connection to one local address; a back end may be reached
    over IPv4 or IPv6, so there is one pool per source address (at most three: IPv4, IPv6, the
    kernel's choice), made when first needed.
    """

    def __init__(self, listen: Sequence[str], *, verify: ssl.SSLContext, limits: httpx.Limits) -> None:
        self._listen = tuple(listen)
        self._verify = verify
        self._limits = limits
        self._pools: dict[str | None, httpx.AsyncHTTPTransport] = {}

    def _pool(self, host: str) -> httpx.AsyncHTTPTransport:
        source = source_address(self._listen, host)
        pool = self._pools.get(source)
        if pool is None:
            pool = self._pools[source] = httpx.AsyncHTTPTransport(
                verify=self._verify, limits=self._limits, trust_env=False, local_address=source
            )
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool(request.url.host).handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.aclose()


class HttpProxy:
    """The front end's ASGI application; the same app serves 443 and 80 (told apart by the scheme)."""

    def __init__(
        self,
        *,
        server: str,
        snapshot: Callable[[], DirectorySnapshot],
        throttle: LoginThrottle,
        locator: BackendLocator,
        backend_tls: ssl.SSLContext,
        https_port: int = 443,
        public_host: str,
        timeouts: httpx.Timeout = TIMEOUTS,
        login: BasicLogin | None = None,
        listen: Sequence[str] = (),
    ) -> None:
        """`listen`: this server's listen addresses, where connections to the back ends leave
        from (transport/deliver/source.py); () leaves it to the kernel."""
        self.server = server
        self._snapshot = snapshot
        self.login = login or BasicLogin(snapshot, throttle)
        self.locator = locator
        # Redirects name this server as the certificate does, never the Host a client sent.
        self._https_base = f"https://{public_host}" + ("" if https_port == 443 else f":{https_port}")
        self.client = httpx.AsyncClient(
            transport=SourcedTransport(
                listen,
                verify=backend_tls,
                limits=httpx.Limits(max_connections=MAX_BACKEND_CONNECTIONS, max_keepalive_connections=100),
            ),
            timeout=timeouts,
            follow_redirects=False,
            trust_env=False,
        )
        self._realm = f'Basic realm="{public_host}", charset="UTF-8"'

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no WebSocket application is proxied (uvicorn then refuses the upgrade)
        response = await self._dispatch(scope, receive, send)
        if response is not None:
            await response(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> Response | None:
        path: str = scope["path"]
        found = match(path)
        if scope["scheme"] != "https":
            action = port80(found, path)
            if action is Port80.REDIRECT:
                target = found.path if found is not None else "/owa/"
                query = scope.get("query_string", b"").decode("latin-1")
                return RedirectResponse(
                    self._https_base + target + (f"?{query}" if query else ""), status_code=302
                )
            if action is Port80.REFUSE:
                return PlainTextResponse(SSL_REQUIRED, status_code=403)
            if action is Port80.NOT_FOUND:
                return PlainTextResponse(NOT_FOUND, status_code=404)
        elif found is None:
            if path in ("", "/"):
                return RedirectResponse(self._https_base + "/owa/", status_code=302)
            return PlainTextResponse(NOT_FOUND, status_code=404)
        assert found is not None
        if found.calendar:
            return await self._calendar(scope, receive, send, found)
        credentials = basic_credentials(scope)
        user = None
        if credentials is not None:
            client = scope.get("client") or ("", 0)
            user = await self.login.verify(str(client[0]), *credentials)
        if user is None:
            return PlainTextResponse(UNAUTHORIZED, status_code=401, headers={"WWW-Authenticate": self._realm})
        endpoint = self.locator.locate(user, BACKEND)
        if endpoint is None:
            log.warning("http proxy: no mounted database for %s", user.primary_address)
            return self._unavailable()
        return await self._proxy(scope, receive, send, endpoint, user, tls=True)

    async def _calendar(self, scope: Scope, receive: Receive, send: Send, found: Match) -> Response | None:
        """A published calendar: routed by the mailbox its URL names, no credentials asked."""
        publisher = http_allowed(self._snapshot().recipient(found.publisher or ""))
        if publisher is None:
            return PlainTextResponse(NOT_FOUND, status_code=404)
        endpoint = self.locator.locate(publisher, BACKEND)
        if endpoint is None:
            return self._unavailable()
        secure = scope["scheme"] == "https"
        return await self._proxy(
            scope, receive, send, endpoint if secure else plain_endpoint(endpoint), None, tls=secure
        )

    def _unavailable(self) -> Response:
        return PlainTextResponse(UNAVAILABLE, status_code=503, headers={"Retry-After": str(RETRY_AFTER)})

    async def _proxy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        endpoint: Endpoint,
        user: Recipient | None,
        *,
        tls: bool,
    ) -> Response | None:
        """Forward the request to `endpoint` and stream the answer back; None once it has been sent."""
        query: bytes = scope.get("query_string", b"")
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        url = httpx.URL(
            scheme="https" if tls else "http",
            host=endpoint.host,
            port=endpoint.port,
            raw_path=raw_path + (b"?" + query if query else b""),
        )
        body = has_body(scope)
        client = ClientSide(receive, body)
        request = self.client.build_request(
            scope["method"],
            url,
            headers=forwarded_headers(scope, user),
            content=client.chunks() if body else None,
        )
        # The client may leave while the back end still works (an ActiveSync Ping waits up to
        # an hour): then the back-end request is dropped at once rather than run to its end.
        exchange = asyncio.create_task(self._exchange(send, request, endpoint, user))
        gone = asyncio.create_task(client.gone())
        try:
            await asyncio.wait((exchange, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (exchange, gone):
                task.cancel()
            await asyncio.gather(exchange, gone, return_exceptions=True)
        if exchange.cancelled() or exchange.exception() is not None:
            return None
        return exchange.result()

    async def _exchange(
        self, send: Send, request: httpx.Request, endpoint: Endpoint, user: Recipient | None
    ) -> Response | None:
        """Send the request and stream the answer to the client; the 503 to send instead when
        the back end could not be reached or did not answer in time."""
        who = user.primary_address if user else "anonymous"
        try:
            response = await self.client.send(request, stream=True)
        except ClientGone:
            return None
        except httpx.HTTPError as error:
            log.warning(
                "http proxy: %s %s for %s to %s: %r", request.method, request.url, who, endpoint.server, error
            )
            return self._unavailable()
        try:
            await self._pump(send, response, endpoint)
        finally:
            await response.aclose()
        log.debug(
            "http proxy: %s %s for %s to %s: %d",
            request.method,
            request.url,
            who,
            endpoint.server,
            response.status_code,
        )
        return None

    @staticmethod
    async def _pump(send: Send, response: httpx.Response, endpoint: Endpoint) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": returned_headers(response),
            }
        )
        try:
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as error:
            # Too late for a status: ending without the last body message makes the server cut
            # the connection, so the client sees a truncated answer rather than a complete one.
            log.warning("http proxy: answer from %s cut: %r", endpoint.server, error)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
