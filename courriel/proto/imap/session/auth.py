"""Commands of any state and of the not-authenticated state: CAPABILITY, NOOP, LOGOUT, ID, STARTTLS,
LOGIN, AUTHENTICATE, and ENABLE and NAMESPACE right after; the capability list.

RFC 9051 §6.1–6.2 and §7.2.2; STARTTLS (RFC 9051 §6.2.1, §11.1), SASL-IR (RFC 4959), PLAIN
(RFC 4616), ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342). Exchange's LoginType
SecureLogin is the default: before TLS no credentials are taken, LOGINDISABLED is advertised
(RFC 9051 §6.2.3) and AUTH=PLAIN is not, and an attempt gets NO [PRIVACYREQUIRED] (RFC 5530).
Failed logins are answered after the authenticator's throttle delay; after `max_login_failures`
on one connection it is closed.
"""

from __future__ import annotations

import binascii
import logging

from courriel.proto.imap import commands as c
from courriel.proto.imap import respcodes as rc
from courriel.proto.imap import writer as w
from courriel.proto.imap.backend import LoginRefused
from courriel.proto.imap.session.context import Done, Session, State, bad, no

log = logging.getLogger(__name__)

#: ENABLE-able extensions (RFC 5161 §4), by their upper-case name, and how ENABLED spells them.
ENABLEABLE = {
    "CONDSTORE": "CONDSTORE",
    "QRESYNC": "QRESYNC",
    "IMAP4REV2": "IMAP4rev2",
    "UTF8=ACCEPT": "UTF8=ACCEPT",
}
_AFTER_LOGIN = (
    "NAMESPACE",
    "UNSELECT",
    "UIDPLUS",
    "MOVE",
    "CHILDREN",
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "ESEARCH",
    "SEARCHRES",
    "CONDSTORE",
    "QRESYNC",
    "BINARY",
    "UTF8=ACCEPT",
    "STATUS=SIZE",
)


def capabilities(s: Session) -> list[str]:
    caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "ID", "ENABLE", "IDLE"]
    if s.state is State.NOT_AUTHENTICATED:
        if s.config.tls_available and not s.tls_active:
            caps.append("STARTTLS")
        caps.extend(("SASL-IR", "AUTH=PLAIN") if s.plaintext_ok else ("LOGINDISABLED",))
    else:
        caps.extend(_AFTER_LOGIN)
        caps.append(f"APPENDLIMIT={s.config.append_limit}")
        caps.append("COMPRESS=DEFLATE")  # RFC 4978
    return caps


async def capability(s: Session, cmd: c.Capability) -> Done:
    s.emit(w.capability(capabilities(s)))
    return Done("Capability completed")


async def noop(s: Session, cmd: c.Noop | c.Check) -> Done:
    """The dispatcher polls the selected folder after NOOP and CHECK (RFC 9051 §6.1.2, §6.4.1)."""
    return Done(f"{'NOOP' if isinstance(cmd, c.Noop) else 'CHECK'} completed")


async def logout(s: Session, cmd: c.Logout) -> None:
    s.bye("Logging out")
    s.emit(w.tagged(cmd.tag, "OK", "Logout completed"))


async def ident(s: Session, cmd: c.Id) -> Done:
    """RFC 2971: log what the client says about itself; say little about us."""
    if cmd.params:
        log.info("IMAP client %s: %s", s.peer, ", ".join(f"{k!r}={v!r}" for k, v in cmd.params))
    s.emit(w.untagged(b'ID ("name" ' + w.string(s.config.server_name) + b")"))
    return Done("ID completed")


async def namespace(s: Session, cmd: c.Namespace) -> Done:
    """RFC 2342 §5: one personal namespace, no prefix, "/" as the separator."""
    s.emit(w.untagged(b'NAMESPACE (("" "/")) NIL NIL'))
    return Done("NAMESPACE completed")


async def enable(s: Session, cmd: c.Enable) -> Done:
    """RFC 5161 §3.1: only in the authenticated state; unknown names are ignored."""
    newly: list[str] = []
    for name in cmd.capabilities:
        spelled = ENABLEABLE.get(name.upper())
        if spelled is not None and name.upper() not in s.enabled:
            s.enabled.add(name.upper())
            newly.append(spelled)
    if "QRESYNC" in s.enabled:
        s.enabled.add("CONDSTORE")  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
    s.emit(w.untagged(" ".join(["ENABLED", *newly]).encode("ascii")))
    return Done("ENABLE completed")


async def starttls(s: Session, cmd: c.StartTls) -> None:
    if s.tls_active:
        raise bad("TLS is already active")
    if not s.config.tls_available:
        raise bad("STARTTLS is not available")
    await s.flush()
    if not await s.wire.start_tls(w.tagged(cmd.tag, "OK", "Begin TLS negotiation now")):
        s.state = State.LOGOUT
        return
    s.tls_active = True
    s.reset_input()


async def login(s: Session, cmd: c.Login) -> Done | None:
    if not s.plaintext_ok:
        raise no("Plaintext authentication is disallowed before TLS", rc.PRIVACYREQUIRED)
    return await _complete(s, cmd.tag, cmd.username, cmd.password)


async def authenticate(s: Session, cmd: c.Authenticate) -> Done | None:
    if cmd.mechanism != "PLAIN":
        raise no("Unsupported authentication mechanism")
    if not s.plaintext_ok:
        raise no("Plaintext authentication is disallowed before TLS", rc.PRIVACYREQUIRED)
    response = cmd.initial_response
    if response is None:
        s.emit(b"+ \r\n")  # RFC 4616 §2: PLAIN starts with an empty challenge
        line = await s.read_line(s.config.pre_auth_timeout)
        if line is None:
            if s.state is State.LOGOUT:
                return None
            raise bad("Authentication exchange failed")
        if line.strip() == b"*":
            raise bad("Authentication cancelled")  # RFC 9051 §6.2.2
        try:
            response = binascii.a2b_base64(line.strip(), strict_mode=True)
        except binascii.Error:
            raise bad("Invalid base64 in authentication response") from None
    parts = response.split(b"\x00")
    if len(parts) != 3:
        raise no("Invalid PLAIN response", rc.AUTHENTICATIONFAILED)
    try:
        authzid, authcid, password = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        raise no("Invalid PLAIN response", rc.AUTHENTICATIONFAILED) from None
    if authzid and authzid.casefold() != authcid.casefold():
        # RFC 4616 §2: acting for another identity needs a right nobody has here.
        raise no("Not authorized to act as that user", rc.AUTHORIZATIONFAILED)
    return await _complete(s, cmd.tag, authcid, password)


async def _complete(s: Session, tag: str, username: str, password: str) -> Done | None:
    result = await s.authenticator.login(username, password, s.peer)
    if isinstance(result, LoginRefused):
        s.login_failures += 1
        if s.login_failures < s.config.max_login_failures:
            raise no(result.text, result.code)
        s.emit(w.tagged(tag, "NO", result.text, result.code))
        s.bye("Too many failed login attempts")
        return None
    s.authenticated(result)
    # RFC 9051 §6.2.2: the capabilities change with authentication; say them right away.
    return Done("Logged in", rc.capability(capabilities(s)))
