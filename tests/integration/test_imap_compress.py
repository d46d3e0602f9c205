# ruff: noqa: F811  (the tests take the imported `env` fixture as a parameter of the same name)
"""COMPRESS=DEFLATE (RFC 4978) on the IMAP4 back end, with imaplib wrapped in zlib as a client.

Over implicit TLS and over plain text (LoginType PlainTextLogin): the capability after login,
a session's commands, a 300 KiB APPEND and its FETCH through the compressed stream (bounded
inflating, large writes), IDLE woken by a delivery, the refusals (BAD for an unknown algorithm
or before login, NO [COMPRESSIONACTIVE] for a second COMPRESS), and a corrupt stream, which
closes only that connection.
"""

from __future__ import annotations

import asyncio
import imaplib
import socket
import zlib
from typing import Any

import pytest

from courriel.org.model import LoginType
from tests.integration.protocol_env import PASSWORD, deliver, message
from tests.integration.test_imap_service import ALICE, HOST, Env, env  # noqa: F401  (fixture)

BIG = 300 * 1024
# imaplib refuses commands it does not know; every state, so that the server's refusal shows.
imaplib.Commands.setdefault("COMPRESS", ("NONAUTH", "AUTH", "SELECTED"))


class Deflating:
    """imaplib's I/O hooks (`send`, `read`, `readline`) with RFC 4978 DEFLATE once active."""

    file: Any
    _z_out: Any = None
    _z_in: Any = None
    _plain = b""

    def compress(self) -> tuple[str, list[Any]]:
        typ, data = self._simple_command("COMPRESS", "DEFLATE")  # type: ignore[attr-defined]
        if typ == "OK":
            self._z_out = zlib.compressobj(6, zlib.DEFLATED, -15)
            self._z_in = zlib.decompressobj(-15)
        return typ, data

    def send(self, data: bytes) -> None:
        if self._z_out is not None:
            data = self._z_out.compress(data) + self._z_out.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)  # type: ignore[misc]

    def _fill(self) -> None:
        chunk = self.file.read1(65536)
        if not chunk:
            raise imaplib.IMAP4.abort("socket closed")
        self._plain += self._z_in.decompress(chunk)

    def read(self, size: int) -> bytes:
        if self._z_in is None:
            return super().read(size)  # type: ignore[misc,no-any-return]
        while len(self._plain) < size:
            self._fill()
        out, self._plain = self._plain[:size], self._plain[size:]
        return out

    def readline(self) -> bytes:
        if self._z_in is None:
            return super().readline()  # type: ignore[misc,no-any-return]
        while b"\n" not in self._plain:
            self._fill()
        i = self._plain.index(b"\n") + 1
        out, self._plain = self._plain[:i], self._plain[i:]
        return out


class DeflateIMAP(Deflating, imaplib.IMAP4):
    pass


class DeflateIMAP_SSL(Deflating, imaplib.IMAP4_SSL):
    pass


def session(imap: DeflateIMAP | DeflateIMAP_SSL) -> dict[str, Any]:
    """A client's session, compressed after login."""
    out: dict[str, Any] = {"caps_before": imap.capabilities}
    imap.login(ALICE, PASSWORD)
    out["caps"] = imap.capability()[1][0].decode()
    out["compress"] = imap.compress()
    out["compress_again"] = imap.compress()
    try:
        out["compress_unknown"] = imap._simple_command("COMPRESS", "LZMA")
    except imaplib.IMAP4.error as exc:  # imaplib raises on BAD
        out["compress_unknown"] = ("BAD", str(exc))
    typ, exists = imap.select("INBOX")
    out["select"] = typ, list(exists)  # imaplib keeps appending to the list it returned
    big = b"Subject: big\r\n\r\n" + b"".join(
        b"line %06d of a long message body\r\n" % i for i in range(BIG // 34)
    )
    out["append"] = imap.append("INBOX", None, None, big)
    out["fetch"] = imap.fetch("1:*", "(BODY.PEEK[])")
    out["big"] = big
    out["search"] = imap.search(None, "SUBJECT", "big")
    out["logout"] = imap.logout()
    return out


def check(out: dict[str, Any]) -> None:
    assert "COMPRESS=DEFLATE" not in out["caps_before"]
    assert "COMPRESS=DEFLATE" in out["caps"].split()
    assert out["compress"] == ("OK", [b"DEFLATE active"])
    assert out["compress_again"] == ("NO", [b"[COMPRESSIONACTIVE] DEFLATE is active already"])
    assert out["compress_unknown"] == (
        "BAD",
        "COMPRESS command error: BAD [b'Unknown compression algorithm']",
    )
    assert out["select"] == ("OK", [b"1"])
    assert out["append"][0] == "OK"
    bodies = [part[1] for part in out["fetch"][1] if isinstance(part, tuple)]
    assert bodies[0] == message(1)
    assert bodies[1] == out["big"]
    assert out["search"] == ("OK", [b"2"])
    assert out["logout"][0] == "BYE"


async def test_compressed_session_over_tls(env: Env) -> None:
    await deliver(env.store, env.alice, message(1), "k1")
    out = await asyncio.to_thread(
        lambda: session(DeflateIMAP_SSL(HOST, env.tls_port, ssl_context=env.tls.client, timeout=10))
    )
    check(out)


async def test_compressed_session_over_plain_text(env: Env) -> None:
    await env.settings(login_type=LoginType.PLAIN_TEXT_LOGIN)
    await deliver(env.store, env.alice, message(1), "k1")
    out = await asyncio.to_thread(lambda: session(DeflateIMAP(HOST, env.stls_port, timeout=10)))
    check(out)


async def test_idle_wakes_through_compression(env: Env) -> None:
    def idle_until_exists(ready: asyncio.Event, loop: asyncio.AbstractEventLoop) -> bytes:
        imap = DeflateIMAP_SSL(HOST, env.tls_port, ssl_context=env.tls.client, timeout=10)
        imap.login(ALICE, PASSWORD)
        assert imap.compress()[0] == "OK"
        imap.select("INBOX")
        imap.send(b"i1 IDLE\r\n")
        assert imap.readline().startswith(b"+")
        loop.call_soon_threadsafe(ready.set)
        line = imap.readline()
        imap.send(b"DONE\r\n")
        while not imap.readline().startswith(b"i1 OK"):  # * 1 RECENT (IMAP4rev1)
            pass
        imap.logout()
        return line

    ready = asyncio.Event()
    task = asyncio.create_task(asyncio.to_thread(idle_until_exists, ready, asyncio.get_running_loop()))
    await asyncio.wait_for(ready.wait(), 10)
    await deliver(env.store, env.alice, message(1), "k1")
    assert await asyncio.wait_for(task, 10) == b"* 1 EXISTS\r\n"


async def test_compress_is_refused_before_login(env: Env) -> None:
    def attempt() -> tuple[str, list[Any]]:
        imap = DeflateIMAP_SSL(HOST, env.tls_port, ssl_context=env.tls.client, timeout=10)
        try:
            return imap._simple_command("COMPRESS", "DEFLATE")
        except imaplib.IMAP4.error as exc:
            return "BAD", [str(exc).encode()]
        finally:
            imap.shutdown()

    status, text = await asyncio.to_thread(attempt)
    assert status == "BAD" and b"not valid" in text[0]


@pytest.mark.parametrize("garbage", [b"\xff" * 64, zlib.compress(b"a1 NOOP\r\n")])
async def test_corrupt_stream_closes_only_that_connection(env: Env, garbage: bytes) -> None:
    await env.settings(login_type=LoginType.PLAIN_TEXT_LOGIN)

    def corrupt() -> bytes:
        sock = socket.create_connection((HOST, env.stls_port), timeout=10)
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(f'a LOGIN "{ALICE}" "{PASSWORD}"\r\nb COMPRESS DEFLATE\r\n'.encode())
        while not (line := f.readline()).startswith(b"b OK"):
            assert line, "closed before COMPRESS was accepted"
        sock.sendall(garbage)  # a zlib header is not raw DEFLATE: corrupt too
        rest = f.read()  # the server closes the connection
        sock.close()
        return rest

    assert await asyncio.to_thread(corrupt) == b""
    out = await asyncio.to_thread(lambda: session(DeflateIMAP(HOST, env.stls_port, timeout=10)))
    assert out["compress"][0] == "OK"
