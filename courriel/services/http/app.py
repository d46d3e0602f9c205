"""The back end's ASGI application: the gate, then one Starlette mount per web application.

The gate admits a request only when it came through the organization: over TLS from a server
whose certificate the organization CA issued (identity.py), carrying the user the front end
authenticated. Anything else gets 403, so a client that reaches 444 or 81 directly, around the
Client Access server, is refused; only published calendars (anonymous by nature) are served to
anyone. The gate also gives the application segment its canonical spelling (IIS virtual
directories ignore case) and completes a bare `/owa` into `/owa/`, so that a mount never answers
with a redirect naming the back end's own address.

Later issues replace a `WhoAmI` by the real application: `backend_app(server, {"EWS": ews_app})`;
each application is an ASGI app mounted at its path (root_path "/EWS", routes below it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from courriel.services.http.applications import APPLICATIONS, match
from courriel.services.http.identity import IDENTITY, identity
from courriel.services.http.whoami import WhoAmI

log = logging.getLogger(__name__)

NOT_THROUGH_FRONT_END = "403 Forbidden: connect through a Client Access server"
NOT_FOUND = "404 Not Found"


class Gate:
    """Admits organization traffic (and published calendars) to the applications."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = match(scope["path"])
        if found is None:
            await PlainTextResponse(NOT_FOUND, status_code=404)(scope, receive, send)
            return
        who = identity(scope)
        if not found.calendar and (who is None or who.user is None):
            client = scope.get("client") or ("?", 0)
            log.info(
                "http back end: %s %s from %s refused: not from a front end",
                scope["method"],
                scope["path"],
                client[0],
            )
            await PlainTextResponse(NOT_THROUGH_FRONT_END, status_code=403)(scope, receive, send)
            return
        path = found.path if found.rest or found.path.endswith("/") else found.path + "/"
        state = {**(scope.get("state") or {}), IDENTITY: who}
        # raw_path would still hold the client's spelling; without it Starlette routes on `path`.
        inner = {key: value for key, value in scope.items() if key != "raw_path"}
        await self.app({**inner, "path": path, "state": state}, receive, send)


def backend_app(server: str, applications: Mapping[str, ASGIApp] | None = None) -> ASGIApp:
    """The back end of Mailbox server `server`; `applications` maps an application's canonical
    name ("EWS", "owa" …) to the ASGI app that serves it, the others answer with `WhoAmI`."""
    given = dict(applications or {})
    unknown = set(given) - {app.name for app in APPLICATIONS}
    if unknown:
        raise ValueError(f"not web applications: {sorted(unknown)}")
    mounts = [Mount("/" + app.name, app=given.get(app.name) or WhoAmI(server, app)) for app in APPLICATIONS]
    return Gate(Starlette(routes=mounts))
