"""IDLE (RFC 2177, RFC 9051 §6.3.13): live updates until the client sends DONE.

While idling the session waits on three things at once: input (DONE), the store's change
notification for the selected folder (a change committed in this process, delivered within
milliseconds), and a timer. The timer sends `* OK Still here` every `idle_keepalive` seconds
so NAT boxes keep the connection, and polls the folder's HIGHESTMODSEQ every `poll_interval`
seconds (or what `poll_every` says) for changes made by other processes — another worker's
local delivery — which cannot notify us (the IMAP service sets it to infinity: its per-process
change feed wakes the session instead, services/imap/feed.py). RFC 2177 §3: a client
re-issues IDLE at least every 29 minutes; the authenticated timeout (30 minutes by default)
counts from the start of this IDLE, so a client that never sends DONE is logged out. A
mailbox moved to another database ends the IDLE with `BYE [UNAVAILABLE]` as soon as the
service notices (`Session.relocated`).
"""

from __future__ import annotations

import asyncio

from courriel.proto.imap import commands as c
from courriel.proto.imap import writer as w
from courriel.proto.imap.reader import LineReceived
from courriel.proto.imap.session.context import Done, Session, State, Wake, bad
from courriel.proto.imap.session.updates import sync


def _poll_interval(s: Session) -> float:
    every = s.config.poll_every
    return every() if every is not None else s.config.poll_interval


async def idle(s: Session, cmd: c.Idle) -> Done | None:
    cfg = s.config
    loop = asyncio.get_running_loop()
    now = loop.time()
    deadline = now + cfg.auth_timeout
    keepalive_at = now + cfg.idle_keepalive
    poll_at = now + _poll_interval(s)
    s.emit(w.continuation("idling"))
    s.reader.line_mode(True)
    try:
        poll = True  # RFC 2177 §3: report what is pending at once
        while True:
            if s.moved:  # the mailbox moved away (context.py): reconnect to the new place
                s.bye_moved()
                return None
            await sync(s, expunge=True, poll=poll)
            if s.state is State.LOGOUT:
                return None  # the selected mailbox was deleted: BYE was sent
            await s.flush()
            event = s.next_event()
            if isinstance(event, LineReceived):
                if event.line.strip().upper() == b"DONE":
                    return Done("IDLE terminated")
                raise bad("Expected DONE")
            if event is not None:
                raise bad("IDLE line too long")
            now = loop.time()
            if now >= deadline:
                s.bye("Disconnected for inactivity")
                return None
            woke = await s.wait(min(deadline, keepalive_at, poll_at) - now, changes=True)
            now = loop.time()
            poll = False
            if woke is Wake.EOF:
                s.state = State.LOGOUT
                return None
            if woke is Wake.STOP:
                s.bye("Server shutting down")
                return None
            if now >= keepalive_at:
                s.emit(w.untagged_status("OK", "Still here"))
                keepalive_at = now + cfg.idle_keepalive
            if now >= poll_at:
                poll = True
                poll_at = now + _poll_interval(s)
    finally:
        s.reader.line_mode(False)
