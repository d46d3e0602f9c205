"""The AUTHORIZATION state: CAPA's login part, USER/PASS, AUTH PLAIN and STLS.

RFC 1939 §4 and §7 (USER, PASS), RFC 5034 (AUTH), RFC 2595 §4 (STLS), RFC 2449 (CAPA).
With `login_allowed_without_tls` False (Exchange's SecureLogin) no credentials are taken before
TLS: USER and AUTH are refused with [AUTH], and CAPA hides USER and SASL.
A login needs the store, so it ends in a `DecideLogin` that the session hands to the I/O layer.
"""

from __future__ import annotations

from courriel.proto.pop3 import replies as r
from courriel.proto.pop3.actions import DecideLogin
from courriel.proto.pop3.replies import Code, Reply
from courriel.proto.pop3.sasl import CANCEL, SaslError, decode_plain
from courriel.proto.pop3.settings import Pop3Settings

MECHANISMS = ("PLAIN",)
VERBS = frozenset({"USER", "PASS", "AUTH", "STLS"})

Outcome = Reply | DecideLogin


class Authorization:
    """The login conversation before a maildrop is open."""

    def __init__(self, settings: Pop3Settings) -> None:
        self._settings = settings
        self.tls_active = settings.tls_active
        self._user: str | None = None  # from USER, waiting for PASS
        self.awaiting_sasl = False  # "+ " sent: the next line is a SASL response

    def tls_started(self) -> None:
        # RFC 2595 §4: what the client said before TLS is forgotten, a pending USER included.
        self.tls_active = True
        self._user = None
        self.awaiting_sasl = False

    @property
    def login_allowed(self) -> bool:
        return self.tls_active or self._settings.login_allowed_without_tls

    @property
    def tls_offered(self) -> bool:
        return self._settings.tls_available and not self.tls_active

    def capabilities(self) -> list[str]:
        """The CAPA lines only this state offers (RFC 2449 §6.2, §6.3; RFC 2595 §4)."""
        lines = []
        if self.login_allowed:
            lines += ["USER", "SASL " + " ".join(MECHANISMS)]
        if self.tls_offered:
            lines.append("STLS")
        return lines

    def handle(self, verb: str, arg: str) -> Outcome | None:
        """The outcome of a command, or None when the verb is not one of this state's."""
        if verb == "USER":
            return self._user_command(arg)
        if verb == "PASS":
            return self._pass_command(arg)
        if verb == "AUTH":
            return self._auth_command(arg)
        if verb == "STLS":
            return self._stls_command(arg)
        return None

    def _user_command(self, arg: str) -> Reply:
        self._user = None
        if not self.login_allowed:
            return r.err(r.TLS_REQUIRED, Code.AUTH)
        name = arg.strip(" ")
        if not name:
            return r.err(r.MISSING_USER)
        # Always +OK: telling which names exist would help guessing (RFC 1939 §13).
        self._user = name
        return r.ok(r.USER_ACCEPTED)

    def _pass_command(self, arg: str) -> Outcome:
        if not self.login_allowed:
            return r.err(r.TLS_REQUIRED, Code.AUTH)
        if self._user is None:
            return r.err(r.USER_FIRST)
        # The password is the rest of the line, spaces included (RFC 1939 §7: "PASS string").
        if not arg:
            return r.err(r.MISSING_PASSWORD)
        user, self._user = self._user, None
        return DecideLogin(user, arg, "USER")

    def _auth_command(self, arg: str) -> Outcome:
        self._user = None
        mechanism, _, initial = arg.strip(" ").partition(" ")
        if not mechanism:
            # AUTH without a mechanism lists them (RFC 1734 practice, which Outlook uses).
            return r.multiline(r.MECHANISMS, MECHANISMS if self.login_allowed else ())
        if mechanism.upper() not in MECHANISMS:
            return r.err(r.UNSUPPORTED_MECHANISM)
        if not self.login_allowed:
            return r.err(r.TLS_REQUIRED, Code.AUTH)
        if initial:
            return self._plain(initial.strip(" "))
        self.awaiting_sasl = True
        return r.continuation()

    def sasl_response(self, line: str) -> Outcome:
        """The client's line after our "+ " challenge."""
        self.awaiting_sasl = False
        if line.strip() == CANCEL:
            # RFC 5034 §4: "*" cancels; the server MUST reject the AUTH command.
            return r.err(r.AUTH_CANCELLED, fault=False)
        return self._plain(line)

    def _plain(self, response: str) -> Outcome:
        try:
            credentials = decode_plain(response)
        except SaslError as exc:
            return r.err(str(exc))
        if credentials.authzid and credentials.authzid != credentials.authcid:
            # Acting for another identity (RFC 4616 §2) is not something we grant.
            return r.err(r.AUTHZID_REFUSED, Code.AUTH)
        return DecideLogin(credentials.authcid, credentials.password, "PLAIN")

    def _stls_command(self, arg: str) -> Reply:
        if arg.strip(" "):
            return r.err(r.NO_ARGUMENTS)
        if self.tls_active:
            return r.err(r.TLS_ACTIVE)
        if not self._settings.tls_available:
            return r.err(r.TLS_UNAVAILABLE)
        self._user = None
        return r.ok(r.BEGIN_TLS, start_tls=True)
