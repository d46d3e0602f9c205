"""The Client Access IMAP4 service: 143 (STARTTLS) and 993 (TLS), proxied to the IMAP4 back end.

Before login the front end talks IMAP itself (imap_login.py). At LOGIN or AUTHENTICATE it
checks the credentials against the directory, opens TLS to the back end holding the mailbox
(locator.py), authenticates there with AUTHENTICATE PLAIN (with SASL-IR when the back end's
greeting lists it, RFC 4959), then sends the client the back end's untagged responses and its
tagged OK under the client's tag — capabilities after login included (RFC 9051 §6.2.3) — and
relays the rest of the session. Refusals map to RFC 5530 codes: AUTHENTICATIONFAILED, INUSE,
LIMIT (MaxConnectionsPerUser) and UNAVAILABLE.
"""

from __future__ import annotations

from collections import deque

from courriel.clientaccess.imap_login import (
    AUTH_FAILED,
    Action,
    Close,
    DecideLogin,
    ImapLoginSession,
    ImapLoginSettings,
    Refusal,
    Send,
    StartTLS,
)
from courriel.clientaccess.pop3 import plain_response
from courriel.clientaccess.proxy import BackendLink, BackendLogin, Denied, FrontEnd, Proxied, relay
from courriel.org.model import ProtocolSettings
from courriel.proto.imap import respcodes as codes
from courriel.proto.imap import writer as w
from courriel.proto.imap.reader import literal_marker
from courriel.services.logins import plaintext_allowed
from courriel.services.stream import Connection, Shutdown

BACKEND_TAG = b"cas1"
MAX_RESPONSE = 1 << 20  # the back end's untagged responses before its tagged answer
TOO_MANY_CONNECTIONS = w.untagged_status("BYE", "Too many connections, try again later", codes.UNAVAILABLE)
SHUTTING_DOWN = w.untagged_status("BYE", "Service shutting down, try again later", codes.UNAVAILABLE)
IDLE_TIMEOUT = w.untagged_status("BYE", "Disconnected for inactivity")

REFUSALS = {
    Denied.CREDENTIALS: Refusal(codes.AUTHENTICATIONFAILED, AUTH_FAILED),
    Denied.IN_USE: Refusal(codes.INUSE, "Mailbox is in use, try again later", counts=False),
    Denied.TOO_MANY: Refusal(codes.LIMIT, "Too many connections for this user", counts=False),
    Denied.UNAVAILABLE: Refusal(
        codes.UNAVAILABLE, "Mailbox server unavailable, try again later", counts=False
    ),
}
BACKEND_CODES = {
    codes.AUTHENTICATIONFAILED: Denied.CREDENTIALS,
    codes.INUSE: Denied.IN_USE,
    codes.LIMIT: Denied.TOO_MANY,
}


def greeting_capabilities(greeting: bytes) -> set[str]:
    """The capabilities of `* OK [CAPABILITY …] text`, upper-cased; empty without the code."""
    head = b"* OK [CAPABILITY "
    if not greeting.upper().startswith(head):
        return set()
    listing, _, _ = greeting[len(head) :].partition(b"]")
    return {cap.decode("ascii", "replace").upper() for cap in listing.split()}


def response_code(rest: bytes) -> str | None:
    """The code of `OK|NO|BAD [CODE …] text` (RFC 9051 §7.1), upper-cased."""
    _, _, text = rest.partition(b" ")
    if not text.startswith(b"["):
        return None
    atom = text[1:].split(b"]", 1)[0].split(b" ", 1)[0]
    return atom.decode("ascii", "replace").upper()


async def read_response(link: BackendLink) -> bytes:
    """One response line, with the literals it carries (RFC 9051 §4.3)."""
    response = bytearray()
    while True:
        line = await link.read_line()
        response += line
        marker = literal_marker(line.rstrip(b"\r\n"))
        if marker is None:
            return bytes(response)
        if len(response) + marker[0] > MAX_RESPONSE:
            return bytes(response)  # not something a login answer carries: let the caller fail
        response += await link.read_exactly(marker[0])


def backend_login_for(client_tag: str) -> BackendLogin:
    """Logs in on an IMAP back end; the answer for the client carries `client_tag`."""

    async def login(link: BackendLink, username: str, password: str) -> bytes | Denied:
        greeting = await link.read_line()
        if not greeting.startswith(b"* OK"):
            return Denied.UNAVAILABLE
        token = plain_response(username, password)
        if "SASL-IR" in greeting_capabilities(greeting):
            await link.send(BACKEND_TAG + b" AUTHENTICATE PLAIN " + token + b"\r\n")
        else:
            await link.send(BACKEND_TAG + b" AUTHENTICATE PLAIN\r\n")
            if not (await link.read_line()).startswith(b"+"):
                return Denied.UNAVAILABLE
            await link.send(token + b"\r\n")
        untagged = bytearray()
        while True:
            response = await read_response(link)
            if response.startswith(BACKEND_TAG + b" "):
                break
            if response.startswith(b"+") or len(untagged) + len(response) > MAX_RESPONSE:
                return Denied.UNAVAILABLE  # a second SASL round: not PLAIN as we know it
            untagged += response
        rest = response[len(BACKEND_TAG) + 1 :]
        if rest.upper().startswith(b"OK"):
            return bytes(untagged) + client_tag.encode("ascii") + b" " + rest
        return BACKEND_CODES.get(response_code(rest) or "", Denied.UNAVAILABLE)

    return login


class ImapFrontEnd(FrontEnd):
    name = "imap-proxy"
    protocol = "imap"
    backend_service = "imap-backend"
    too_many_connections = TOO_MANY_CONNECTIONS

    async def converse(self, connection: Connection, settings: ProtocolSettings) -> None:
        await _ImapConversation(self, connection, settings).run()


class _ImapConversation:
    def __init__(self, front: ImapFrontEnd, connection: Connection, settings: ProtocolSettings) -> None:
        self._front = front
        self._conn = connection
        self._settings = settings
        defaults = ImapLoginSettings()
        self._session = ImapLoginSession(
            ImapLoginSettings(
                banner=settings.banner or defaults.banner,
                tls_available=front.listeners.tls is not None,
                tls_active=connection.tls_active,
                login_allowed_without_tls=plaintext_allowed(settings),
                max_command=max(1024, settings.max_command_size),
            )
        )
        self._proxied: Proxied | None = None

    async def run(self) -> None:
        session, conn = self._session, self._conn
        try:
            actions = session.start()
            while True:
                outcome = await self._perform(actions)
                if isinstance(outcome, Proxied):
                    self._proxied = outcome
                    await conn.write(outcome.reply)
                    idle = self._settings.authenticated_connection_timeout
                    await relay(conn, outcome.link, session.handover(), idle)
                    return
                if not outcome:
                    return
                data = await conn.receive(self._settings.pre_authenticated_connection_timeout)
                if data is None:
                    await conn.write(IDLE_TIMEOUT)
                    return
                actions = session.feed(data) if data else session.eof()
        except Shutdown:
            await conn.write(SHUTTING_DOWN)
        finally:
            if self._proxied is not None:
                self._front.release(self._proxied)

    async def _perform(self, actions: list[Action]) -> bool | Proxied:
        queue = deque(actions)
        out = bytearray()
        while queue:
            action = queue.popleft()
            if isinstance(action, Send):
                out += action.data
            elif isinstance(action, StartTLS):
                if not await self._conn.start_tls(bytes(out)):
                    return False
                out.clear()
                queue.extend(self._session.tls_started())
            elif isinstance(action, Close):
                await self._conn.write(bytes(out))
                return False
            elif isinstance(action, DecideLogin):
                await self._conn.write(bytes(out))
                out.clear()
                outcome = await self._front.proxy_login(
                    self._conn.peer[0], action.username, action.password, backend_login_for(action.tag)
                )
                if isinstance(outcome, Proxied):
                    return outcome
                queue.extend(self._session.refuse(REFUSALS[outcome]))
        await self._conn.write(bytes(out))
        return not self._conn.closed
