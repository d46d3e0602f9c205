"""Who a proxied request is for: headers the front end adds, believed only from an organization server.

The Client Access proxy authenticates the user, then tells the back end who it is in
`X-Courriel-Authenticated-User` (the primary SMTP address) and `X-Courriel-Mailbox-Guid`, as
Exchange's front end passes a serialized access token instead of the client's credentials. Such a
header proves nothing by itself, so the back end takes it only on a connection whose TLS client
certificate the organization CA issued to one of its servers (security/orgca.py; the listener
puts that server's name in the ASGI scope's state, listener.py). The front end removes any
`X-Courriel-*` header a client sends (the header firewall) before adding its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Scope

PREFIX = "x-courriel-"
AUTHENTICATED_USER = "X-Courriel-Authenticated-User"
MAILBOX_GUID = "X-Courriel-Mailbox-Guid"

PEER_SERVER = "courriel.peer_server"  # scope["state"] key: the organization server at the other end, or None
IDENTITY = "courriel.identity"  # scope["state"] key set by the back end's gate: an Identity


@dataclass(frozen=True, slots=True)
class Identity:
    front_end: str  # the organization server that proxied the request (from its certificate)
    user: str | None  # the authenticated user's primary address; None for anonymous requests
    mailbox_guid: str | None


def peer_server(scope: Scope) -> str | None:
    """The organization server this request's connection comes from, or None."""
    state = scope.get("state") or {}
    name = state.get(PEER_SERVER)
    return name if isinstance(name, str) and name else None


def header(scope: Scope, name: str) -> str | None:
    """The single value of a request header; None when absent or repeated (an ambiguous identity)."""
    wanted = name.lower().encode("latin-1")
    values = [value for key, value in scope["headers"] if key.lower() == wanted]
    if len(values) != 1:
        return None
    text = values[0].decode("utf-8", "replace").strip()
    return text or None


def identity(scope: Scope) -> Identity | None:
    """The identity the front end vouches for, when the request came through one; else None."""
    front_end = peer_server(scope)
    if front_end is None:
        return None
    return Identity(front_end, header(scope, AUTHENTICATED_USER), header(scope, MAILBOX_GUID))
