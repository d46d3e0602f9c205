"""The web applications a Mailbox server serves, as Exchange's virtual directories name them.

The front end routes a request to the user's Mailbox server by its first path segment, and the back
end mounts one application per segment: both read this table. IIS matches virtual directories
without regard to case (clients ask for /autodiscover/autodiscover.xml and /ews/exchange.asmx), so
`match` does too and returns the path with the segment spelled as the table spells it.

Calendar publishing (/owa/calendar/<mailbox>/<calendar>/calendar.html or .ics) is the one
anonymous part: a published calendar is reachable by anyone holding its URL, over 80 and 443
(research/exchange2013-facts.md §0: "Internet calendar publishing" on 80).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Application:
    name: str  # the first path segment, canonical spelling
    purpose: str


OWA = Application("owa", "Outlook Web App")
ECP = Application("ecp", "Exchange Control Panel")
EWS = Application("EWS", "Exchange Web Services")
ACTIVESYNC = Application("Microsoft-Server-ActiveSync", "Exchange ActiveSync")
AUTODISCOVER = Application("Autodiscover", "Autodiscover")
OAB = Application("OAB", "Offline Address Book")
MAPI = Application("mapi", "MAPI over HTTP")
RPC = Application("rpc", "Outlook Anywhere (RPC over HTTP)")

APPLICATIONS: tuple[Application, ...] = (OWA, ECP, EWS, ACTIVESYNC, AUTODISCOVER, OAB, MAPI, RPC)
_BY_SEGMENT = {app.name.casefold(): app for app in APPLICATIONS}

CALENDAR = "calendar"  # /owa/calendar/…: published calendars, anonymous


@dataclass(frozen=True, slots=True)
class Match:
    application: Application
    path: str  # the request path with the application segment in its canonical spelling
    rest: tuple[str, ...]  # the segments after the application's, empty ones dropped

    @property
    def calendar(self) -> bool:
        """A published calendar: /owa/calendar/<mailbox>/…"""
        return self.application is OWA and len(self.rest) >= 2 and self.rest[0].casefold() == CALENDAR

    @property
    def publisher(self) -> str | None:
        """The mailbox a published calendar belongs to (its address, as the URL names it)."""
        return self.rest[1] if self.calendar else None


def match(path: str) -> Match | None:
    """The application a (percent-decoded) request path belongs to, or None."""
    segment, _, tail = path.lstrip("/").partition("/")
    app = _BY_SEGMENT.get(segment.casefold())
    if app is None:
        return None
    canonical = "/" + app.name + ("/" + tail if tail or path.endswith("/") else "")
    return Match(app, canonical, tuple(s for s in tail.split("/") if s))
