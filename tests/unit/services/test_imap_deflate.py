"""RFC 4978 DEFLATE of one IMAP connection (services/imap/deflate.py) against zlib as the
client: both directions decode, each write is complete on arrival (sync flush), and inflating
is bounded however well the client's input compresses."""

from __future__ import annotations

import zlib

import pytest

from courriel.services.imap.deflate import Deflate


def test_each_write_decodes_on_arrival() -> None:
    server, client_in = Deflate(), zlib.decompressobj(-15)
    for data in (b"* OK hello\r\n", b"a1 OK done\r\n" * 100, b"x" * 100_000):
        assert client_in.decompress(server.compress(data)) == data


def test_client_input_in_pieces() -> None:
    server, client_out = Deflate(), zlib.compressobj(9, zlib.DEFLATED, -15)
    data = b"".join(b"a%d NOOP\r\n" % i for i in range(1000))
    wire = client_out.compress(data) + client_out.flush(zlib.Z_SYNC_FLUSH)
    got = bytearray()
    for i in range(0, len(wire), 7):
        server.feed(wire[i : i + 7])
        while chunk := server.inflate(1000):
            got += chunk
    assert bytes(got) == data


def test_inflating_is_bounded() -> None:
    server, client_out = Deflate(), zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = client_out.compress(b"\0" * 50_000_000) + client_out.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 100_000
    server.feed(bomb)
    total = 0
    for _ in range(2000):
        chunk = server.inflate(64 * 1024)
        assert len(chunk) <= 64 * 1024
        if not chunk:
            break
        total += len(chunk)
    assert total == 50_000_000


def test_a_corrupt_stream_raises() -> None:
    server = Deflate()
    server.feed(b"\xff" * 16)
    with pytest.raises(zlib.error):
        server.inflate(1024)
