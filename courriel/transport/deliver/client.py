"""A small pipelining SMTP client on asyncio: one connection to one next-hop address.

Why not aiosmtplib: it sends MAIL, each RCPT and DATA one round trip at a time (no PIPELINING,
RFC 2920), which costs a relay 2 + n round trips per message; it also hides the input buffer,
which we need to refuse plaintext injected before a STARTTLS handshake. What we need is small:
the wire rules live in `esmtp` (sans I/O) and this module only moves bytes, with a timeout on
every wait (the send connector's ConnectionInactivityTimeout).

With PIPELINING, MAIL, every RCPT and DATA go out in one write and their replies are read in
order (RFC 2920 §3.1); if DATA is answered 354 although no recipient was accepted, a lone "."
ends it. Without it, commands go one at a time. BINARYMIME bodies go in one `BDAT n LAST`
(RFC 3030). After STARTTLS the client forgets the EHLO reply and asks again (RFC 3207 §4.2).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from courriel.core.replies import Reply
from courriel.transport.deliver.esmtp import Capabilities, ProtocolViolation, ReplyReader

ProtocolLogger = Callable[[str, str], None]  # (event ">" "<" "*", text)


class ConnectionLost(Exception):
    """The connection failed, timed out or broke the protocol; `after_data` if the final dot had
    been sent (the peer may then have taken the message: RFC 1047's window)."""

    def __init__(self, detail: str, *, after_data: bool = False) -> None:
        super().__init__(detail)
        self.after_data = after_data


@dataclass(frozen=True, slots=True)
class Exchange:
    """The replies of one mail transaction. `data` answers DATA/BDAT (or ends the content when
    `completed`); it is None when no recipient was accepted. Unless `completed`, the server may
    still hold the envelope: RSET before the next transaction."""

    mail: Reply
    rcpts: tuple[Reply, ...]
    data: Reply | None
    completed: bool = False


class _Stream(asyncio.Protocol):
    """Socket callbacks into a buffer we own (so nothing can hide across a TLS upgrade)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.inbox = bytearray()
        self.closed = False
        self.readable = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.inbox += data
        self.readable.set()

    def eof_received(self) -> bool:
        self.closed = True
        self.readable.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.readable.set()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


class SmtpClient:
    def __init__(
        self, stream: _Stream, *, host: str, address: str, timeout: float, log: ProtocolLogger | None
    ) -> None:
        self._stream = stream
        self._reader = ReplyReader()
        self._replies: list[Reply] = []
        self.host = host  # the name routing gave (MX or smart host), for logs and DSNs' Remote-MTA
        self.address = address
        self.peer = host if host == address else f"{host}[{address}]"
        self.timeout = timeout
        self._log = log
        self.capabilities = Capabilities()
        self.tls = False
        self.transactions = 0  # completed on this connection, for the reuse limit
        self.broken = False

    @classmethod
    async def connect(
        cls,
        address: str,
        port: int,
        *,
        host: str | None = None,
        timeout: float,
        connect_timeout: float,
        log: ProtocolLogger | None = None,
        local_address: str | None = None,
    ) -> SmtpClient:
        """`local_address`: the address the connection leaves from (None: the kernel's choice;
        deliver/source.py says which)."""
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        origin = f" from {local_address}" if local_address else ""
        try:
            async with asyncio.timeout(connect_timeout):
                _, stream = await loop.create_connection(_Stream, address, port, local_addr=local)
        except (OSError, TimeoutError) as exc:
            raise ConnectionLost(
                f"connect to {address}:{port}{origin} failed: {exc or type(exc).__name__}"
            ) from exc
        client = cls(stream, host=host or address, address=address, timeout=timeout, log=log)
        client._trace("*", f"connected to {address}:{port}{origin}")
        return client

    @property
    def usable(self) -> bool:
        return not self.broken and not self._stream.closed

    def peer_certificate(self) -> dict[str, object] | None:
        """The verified peer certificate (ssl's dict form) after STARTTLS, else None."""
        transport = self._stream.transport
        cert = transport.get_extra_info("peercert") if transport is not None else None
        return cert if isinstance(cert, dict) else None

    def _trace(self, event: str, text: str) -> None:
        if self._log is not None:
            self._log(event, text)

    # -- bytes ------------------------------------------------------------------------------

    async def _write(self, data: bytes, *, shown: Sequence[str] = ()) -> None:
        stream = self._stream
        if stream.transport is None or stream.closed:
            self.broken = True
            raise ConnectionLost(f"{self.peer}: connection closed")
        for line in shown:
            self._trace(">", line)
        stream.transport.write(data)
        try:
            async with asyncio.timeout(self.timeout):
                await stream.writable.wait()
        except TimeoutError as exc:
            self.broken = True
            raise ConnectionLost(f"{self.peer}: timed out sending") from exc

    async def read_reply(self) -> Reply:
        stream = self._stream
        try:
            async with asyncio.timeout(self.timeout):
                while not self._replies:
                    if stream.inbox:
                        data = bytes(stream.inbox)
                        stream.inbox.clear()
                        self._replies.extend(self._reader.feed(data))
                        continue
                    if stream.closed:
                        raise ConnectionLost(f"{self.peer}: connection closed by the server")
                    stream.readable.clear()
                    await stream.readable.wait()
        except TimeoutError as exc:
            self.broken = True
            raise ConnectionLost(f"{self.peer}: no reply within {self.timeout:g} s") from exc
        except ProtocolViolation as exc:
            self.broken = True
            raise ConnectionLost(f"{self.peer}: {exc}") from exc
        except ConnectionLost:
            self.broken = True
            raise
        reply = self._replies.pop(0)
        self._trace("<", f"{reply.code} {reply.enhanced + ' ' if reply.enhanced else ''}{reply.text}")
        if reply.closes:
            self.broken = True  # RFC 5321 §3.8: 421 closes the channel
        return reply

    async def command(self, line: str, *, shown: str | None = None) -> Reply:
        await self._write(line.encode("utf-8") + b"\r\n", shown=[shown or line])
        return await self.read_reply()

    # -- session ----------------------------------------------------------------------------

    async def greeting(self) -> Reply:
        return await self.read_reply()

    async def hello(self, name: str) -> Reply:
        """EHLO, or HELO when EHLO is refused (RFC 5321 §3.2)."""
        reply = await self.command(f"EHLO {name}")
        if reply.code == 250:
            self.capabilities = Capabilities.from_ehlo(reply)
            return reply
        if reply.code >= 500:
            reply = await self.command(f"HELO {name}")
        self.capabilities = Capabilities()
        return reply

    async def starttls(self, context: ssl.SSLContext, server_hostname: str | None) -> Reply:
        """STARTTLS and the handshake; the caller says EHLO again. ConnectionLost if it fails."""
        reply = await self.command("STARTTLS")
        if reply.code != 220:
            return reply
        stream = self._stream
        if self._reader.pending or self._replies or stream.inbox:
            self.broken = True
            raise ConnectionLost(f"{self.peer}: data injected before the TLS handshake")
        assert stream.transport is not None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                upgraded = await loop.start_tls(
                    stream.transport, stream, context, server_hostname=server_hostname
                )
        except (OSError, ssl.SSLError, ssl.CertificateError, TimeoutError, ValueError) as exc:
            self.broken = True
            stream.transport.abort()
            raise ConnectionLost(f"{self.peer}: TLS handshake failed: {exc}") from exc
        if upgraded is None:
            self.broken = True
            raise ConnectionLost(f"{self.peer}: TLS handshake failed")
        assert isinstance(upgraded, asyncio.Transport)
        stream.transport = upgraded
        self.tls = True
        self.capabilities = Capabilities()  # RFC 3207 §4.2: forget what was offered in clear
        cipher = upgraded.get_extra_info("cipher")
        self._trace("*", f"TLS {cipher[1]} {cipher[0]}" if cipher else "TLS")
        return reply

    async def authenticate(self, username: str, password: str) -> Reply:
        """AUTH PLAIN (RFC 4616) when offered, else LOGIN; credentials never reach the log."""
        offered = self.capabilities.auth
        if "PLAIN" in offered or "LOGIN" not in offered:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
            return await self.command(f"AUTH PLAIN {token}", shown="AUTH PLAIN ****")
        reply = await self.command("AUTH LOGIN")
        for secret in (username, password):
            if reply.code != 334:
                return reply
            reply = await self.command(base64.b64encode(secret.encode()).decode(), shown="****")
        return reply

    # -- transactions -----------------------------------------------------------------------

    async def transaction(
        self, mail: str, rcpts: Sequence[str], payload: bytes, *, bdat: bool = False
    ) -> Exchange:
        """One mail transaction; `payload` is dot-stuffed for DATA, raw for BDAT."""
        if self.capabilities.pipelining:
            batch = [mail, *rcpts] + ([] if bdat else ["DATA"])
            await self._write("".join(f"{c}\r\n" for c in batch).encode("utf-8"), shown=batch)
            mail_reply = await self.read_reply()
            rcpt_replies = tuple([await self.read_reply() for _ in rcpts])
            accepted = mail_reply.is_positive and any(r.is_positive for r in rcpt_replies)
            if not bdat:
                go = await self.read_reply()
                if not accepted:
                    if go.code == 354:  # RFC 2920 §3.1: no recipient, so end the data at once
                        await self._write(b".\r\n", shown=["."])
                        await self.read_reply()
                    return Exchange(mail_reply, rcpt_replies, None)
                if go.code != 354:
                    return Exchange(mail_reply, rcpt_replies, go)
                return Exchange(mail_reply, rcpt_replies, await self._final(payload), True)
        else:
            mail_reply = await self.command(mail)
            if not mail_reply.is_positive:
                return Exchange(mail_reply, tuple(mail_reply for _ in rcpts), None)
            rcpt_list = [await self.command(rcpt) for rcpt in rcpts]
            rcpt_replies = tuple(rcpt_list)
            accepted = any(r.is_positive for r in rcpt_replies)
            if accepted and not bdat:
                go = await self.command("DATA")
                if go.code != 354:
                    return Exchange(mail_reply, rcpt_replies, go)
                return Exchange(mail_reply, rcpt_replies, await self._final(payload), True)
        if not accepted:
            return Exchange(mail_reply, rcpt_replies, None)
        header = f"BDAT {len(payload)} LAST"
        return Exchange(
            mail_reply, rcpt_replies, await self._final(header.encode() + b"\r\n" + payload, header), True
        )

    async def _final(self, payload: bytes, shown: str | None = None) -> Reply:
        """Send the content and read the reply that decides the transaction. From the first
        byte on, a broken connection may have left the message with the peer (RFC 1047)."""
        try:
            await self._write(payload, shown=[shown or f"<{len(payload)} octets>"])
            reply = await self.read_reply()
        except ConnectionLost as exc:
            exc.after_data = True
            raise
        self.transactions += 1
        return reply

    async def reset(self) -> bool:
        """RSET after an unfinished transaction; False when the connection is not worth keeping."""
        try:
            return (await self.command("RSET")).code == 250
        except ConnectionLost:
            return False

    async def close(self, *, polite: bool = True) -> None:
        """QUIT (briefly waiting for 221) and close."""
        stream = self._stream
        if polite and self.usable:
            try:
                self.timeout = min(self.timeout, 5.0)
                await self.command("QUIT")
            except ConnectionLost:
                pass
        if stream.transport is not None:
            stream.transport.close()
        self.broken = True
