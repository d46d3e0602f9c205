"""services/listener.py `small_tls_reads`: TLS connections read through one buffer per thread,
and many connections streaming at once in both directions still get exactly their own bytes."""

from __future__ import annotations

import asyncio
import os
import ssl
from asyncio import sslproto
from pathlib import Path

from courriel.security.tls import client_context, ensure_certificate, server_context
from courriel.services.listener import TLS_READ_SIZE, small_tls_reads

CLIENTS = 12
PAYLOAD = 300 * 1024  # many socket reads per connection, interleaved between connections


class Echo(asyncio.Protocol):
    protocols: list[Echo] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        Echo.protocols.append(self)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def test_concurrent_tls_streams_share_the_read_buffer_without_mixing(tmp_path: Path) -> None:
    small_tls_reads()
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    ensure_certificate(cert, key, "localhost", extra_names=("127.0.0.1",))
    server = await asyncio.get_running_loop().create_server(
        Echo, "127.0.0.1", 0, ssl=server_context(cert, key)
    )
    port = server.sockets[0].getsockname()[1]
    client_tls = client_context(False)
    assert isinstance(client_tls, ssl.SSLContext)

    async def one() -> bool:
        payload = os.urandom(PAYLOAD)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls)
        try:
            writer.write(payload)
            echoed = await asyncio.wait_for(reader.readexactly(PAYLOAD), 60)
            return echoed == payload
        finally:
            writer.close()

    try:
        results = await asyncio.gather(*(one() for _ in range(CLIENTS)))
    finally:
        server.close()
        await server.wait_closed()
    assert results == [True] * CLIENTS
    assert sslproto.SSLProtocol.max_size == TLS_READ_SIZE
    # No connection kept a receive buffer of its own.
    assert Echo.protocols and all(len(p.transport._ssl_protocol._ssl_buffer) == 0 for p in Echo.protocols)  # type: ignore[attr-defined]
