"""The answer of a web application that is not built yet: who asked, through which front end, what.

Each application path answers with JSON naming the authenticated user, the server that served the
request and the one that proxied it, the method, path and query, and the size and SHA-256 of the
request body (read as it streams, never held whole). That is what a check of the proxy's
authentication and routing needs; the real applications replace it mount by mount (app.py).
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from courriel.services.http.applications import Application
from courriel.services.http.identity import IDENTITY, Identity


class WhoAmI:
    def __init__(self, server: str, application: Application) -> None:
        self.server = server
        self.application = application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
        who: Identity | None = scope.get("state", {}).get(IDENTITY)
        answer = {
            "application": self.application.name,
            "server": self.server,
            "front_end": who.front_end if who else None,
            "user": who.user if who else None,
            "mailbox_guid": who.mailbox_guid if who else None,
            "method": request.method,
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "body_bytes": size,
            "body_sha256": digest.hexdigest(),
        }
        await JSONResponse(answer)(scope, receive, send)
