"""uvicorn on sockets we bind: the HTTP listeners of the Client Access proxy and the back end.

uvicorn is driven as a library (one `uvicorn.Server` per address and port, each with its TLS
context) rather than as a program: the composition root owns the signals and the logging, so the
server here neither installs signal handlers nor configures logging, and it trusts no
`X-Forwarded-*` header (the front end is where clients arrive; the back end reads the front end's
headers only through identity.py). Sockets are bound here so that several worker processes can
share a port (SO_REUSEPORT) as the other listeners do.

Per connection, the TLS peer's organization server (security/orgca.py `peer_server`) is put in
the ASGI scope's state under `identity.PEER_SERVER`: the handshake is over before uvicorn's
protocol sees the connection, so the answer is known for every request on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from courriel.services.http.identity import PEER_SERVER
from courriel.services.port_claim import PortClaim, claimed

log = logging.getLogger(__name__)

PeerServer = Callable[[ssl.SSLObject], str | None]

KEEP_ALIVE = 15  # seconds an idle connection is kept (before its first request too)
MAX_CONCURRENCY = 10_000  # connections or requests in progress; beyond, uvicorn answers 503
START_TIMEOUT = 10.0


def protocol_class(peer_server: PeerServer | None) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol, telling the application which organization server is connected."""

    class PeerAwareH11(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            peer = None
            if peer_server is not None and ssl_object is not None:
                try:
                    peer = peer_server(ssl_object)
                except (ValueError, ssl.SSLError) as error:  # a certificate we cannot read is no server's
                    log.info("unreadable TLS peer certificate: %s", error)
            # The per-request scope's state is a copy of this mapping: one per connection now.
            self.app_state = {**self.app_state, PEER_SERVER: peer}
            # uvicorn arms its idle timer only once a first answer is out: a connection that
            # never sends a request would otherwise be held for ever.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    return PeerAwareH11


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner and says when it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A bound, non-blocking TCP socket (listen() is called by the event loop)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # As asyncio does: "::" and "0.0.0.0" are two listeners, not one that shadows the other.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class _Running:
    host: str
    port: int
    server: _Server
    task: asyncio.Task[None]
    claim: PortClaim | None  # this server's hold on the shared port (port_claim.py)


class HttpListeners:
    """The listeners of one HTTP service (the proxy, or the back end): one ASGI app, many addresses."""

    def __init__(
        self,
        name: str,
        app: ASGIApp,
        *,
        peer_server: PeerServer | None = None,
        reuse_port: bool = False,
        max_concurrency: int = MAX_CONCURRENCY,
        keep_alive: int = KEEP_ALIVE,
    ) -> None:
        self.name = name
        self.app = app
        self.reuse_port = reuse_port
        self.max_concurrency = max_concurrency
        self.keep_alive = keep_alive
        self._protocol = protocol_class(peer_server)
        self._running: list[_Running] = []

    def _config(self, tls: ssl.SSLContext | None) -> uvicorn.Config:
        extra: dict[str, Any] = {}
        if tls is not None:
            extra["ssl_context_factory"] = lambda _config, _default: tls
        return uvicorn.Config(
            self.app,
            http=self._protocol,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            limit_concurrency=self.max_concurrency,
            timeout_keep_alive=self.keep_alive,
            **extra,
        )

    async def listen(self, host: str, port: int, tls: ssl.SSLContext | None) -> int:
        """Serve on host:port (TLS when `tls` is given); returns the bound port (for port 0)."""
        with claimed(host, port, self.reuse_port) as held:
            sock = bind(host, port, reuse_port=self.reuse_port)
        server = _Server(self._config(tls))
        task = asyncio.create_task(server.serve(sockets=[sock]), name=f"{self.name} {host}:{port}")
        ready = asyncio.create_task(server.ready.wait())
        done, _ = await asyncio.wait(
            (task, ready), timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            server.should_exit = True
            sock.close()
            if held is not None:
                held.release()
            if task.done():
                raise OSError(f"{self.name} could not start on {host}:{port}: {task.exception()!r}")
            task.cancel()
            raise OSError(f"{self.name} did not start on {host}:{port}")
        bound = int(sock.getsockname()[1])
        self._running.append(_Running(host, bound, server, task, held))
        return bound

    def bound(self) -> list[tuple[str, int]]:
        return [(run.host, run.port) for run in self._running]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let requests in progress finish for up to `grace` seconds, then cut them."""
        running, self._running = self._running, []
        for run in running:
            run.server.config.timeout_graceful_shutdown = max(1, int(grace))
            run.server.should_exit = True
            if run.claim is not None:
                run.claim.release()
        for run in running:
            try:
                await asyncio.wait_for(run.task, grace + 5.0)
            except TimeoutError:
                log.warning("%s on %s:%d did not stop in time", self.name, run.host, run.port)
            except Exception:
                log.exception("%s on %s:%d failed while stopping", self.name, run.host, run.port)
