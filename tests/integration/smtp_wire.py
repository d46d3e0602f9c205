"""A byte-level SMTP client for the integration suites: what smtplib hides, on a real socket.

The libraries (smtplib, aiosmtplib, swaks, curl) prove that real clients work; this client proves
the rules: it sends exactly the bytes a test gives (pipelined batches, garbage, long lines, BDAT
chunks, addresses no library would write) and returns each reply whole, so tests can compare
them with the reply constants of `courriel.core.replies` and `courriel.transport.receive.replies`.
It can connect from any 127.0.0.0/8 source address, so that a test has a client IP of its own
(RemoteIPRanges, login throttling) without disturbing the others. RFC 5321 §4.2 (reply format).
"""

from __future__ import annotations

import base64
import socket
import ssl
import time
from dataclasses import dataclass

from courriel.core.replies import Reply

HOST = "127.0.0.1"
TIMEOUT = 15.0


@dataclass(frozen=True)
class Answer:
    """One SMTP reply as received: its code and its lines without the `NNN-`/`NNN ` prefix."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def enhanced(self) -> str | None:
        first = self.lines[0].split(" ", 1)[0] if self.lines else ""
        return first if first.count(".") == 2 and first[0].isdigit() else None

    def __str__(self) -> str:
        return f"{self.code} {self.text}"

    def is_(self, reply: Reply) -> bool:
        """Exactly this reply constant: code, enhanced status code and text."""
        return (self.code, self.text) == (
            reply.code,
            f"{reply.enhanced} {reply.text}" if reply.enhanced else reply.text,
        )


def same(answer: Answer, reply: Reply) -> None:
    """Assert that `answer` is exactly the reply constant `reply`."""
    assert answer.is_(reply), f"expected {reply.code} {reply.enhanced} {reply.text!r}, got {answer}"


class RawSmtp:
    """A blocking SMTP client that sends bytes as given and reads replies one by one."""

    def __init__(self, port: int, *, source: str = HOST, timeout: float = TIMEOUT) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(
            (HOST, port), timeout=timeout, source_address=(source, 0)
        )
        self._buffer = b""
        self.greeting = self.read()

    # -- reading ---------------------------------------------------------------------------

    def _line(self) -> bytes | None:
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r")

    def read(self) -> Answer:
        """The next whole reply (all lines of a multi-line one); fails on a closed connection."""
        lines: list[str] = []
        while True:
            raw = self._line()
            assert raw is not None, f"connection closed; reply so far: {lines}"
            text = raw.decode("utf-8", "replace")
            assert len(text) >= 3 and text[:3].isdigit(), f"not an SMTP reply line: {text!r}"
            lines.append(text[4:])
            if text[3:4] != "-":
                return Answer(int(text[:3]), tuple(lines))

    def closed_by_server(self) -> bool:
        """True once the server has closed the connection (reads until EOF, bounded by the timeout)."""
        try:
            return self._line() is None
        except (ConnectionResetError, TimeoutError):
            return False

    # -- writing ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, data: bytes, replies: int = 1) -> list[Answer]:
        """Write `data` in one go (several commands: pipelining) and read `replies` replies."""
        self.write(data)
        return [self.read() for _ in range(replies)]

    def cmd(self, line: str) -> Answer:
        """One command line (CRLF added) and its reply."""
        return self.send(line.encode("utf-8") + b"\r\n")[0]

    def timed(self, line: str) -> tuple[Answer, float]:
        """A command and how long its reply took, in seconds."""
        start = time.monotonic()
        answer = self.cmd(line)
        return answer, time.monotonic() - start

    # -- conveniences --------------------------------------------------------------------------

    def ehlo(self, name: str = "client.test") -> set[str]:
        """EHLO; returns the extension keywords offered (upper case, parameters kept: `AUTH PLAIN LOGIN`)."""
        answer = self.cmd(f"EHLO {name}")
        assert answer.code == 250, answer
        return {line.upper() for line in answer.lines[1:]}

    def starttls(self, context: ssl.SSLContext) -> None:
        """STARTTLS and the handshake (RFC 3207); the caller says EHLO again."""
        answer = self.cmd("STARTTLS")
        assert answer.code == 220, answer
        assert not self._buffer, "the server sent something after 220 to STARTTLS"
        self.sock = context.wrap_socket(self.sock, server_hostname=HOST)

    def auth_plain(self, user: str, password: str) -> Answer:
        return self.cmd(f"AUTH PLAIN {plain_token(user, password)}")

    def auth_login(self, user: str, password: str) -> Answer:
        """AUTH LOGIN with the user name and the password as separate responses."""
        first = self.cmd("AUTH LOGIN")
        if first.code != 334:
            return first
        second = self.cmd(b64(user))
        if second.code != 334:
            return second
        return self.cmd(b64(password))

    def transaction(
        self, sender: str, recipients: list[str], message: bytes, mail_params: str = ""
    ) -> list[Answer]:
        """MAIL, each RCPT, DATA and the message, one command at a time; every reply in order.

        Stops after DATA when DATA is refused (then there is no message to send)."""
        answers = [self.cmd(f"MAIL FROM:<{sender}>{' ' + mail_params if mail_params else ''}")]
        answers += [self.cmd(f"RCPT TO:<{r}>") for r in recipients]
        data = self.cmd("DATA")
        answers.append(data)
        if data.code == 354:
            answers.append(self.send(dot_stuffed(message) + b".\r\n")[0])
        return answers

    def quit(self) -> None:
        try:
            self.cmd("QUIT")
        except (OSError, AssertionError):
            pass
        self.close()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawSmtp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.quit()


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def plain_token(user: str, password: str) -> str:
    """The SASL PLAIN initial response (RFC 4616 §2): NUL user NUL password, in base64."""
    return b64(f"\0{user}\0{password}")


def dot_stuffed(message: bytes) -> bytes:
    """The message as DATA sends it (RFC 5321 §4.5.2), ending with CRLF."""
    lines = message.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)


def message(
    token: str,
    *,
    sender: str = "sender@sender.test",
    to: str = "alice@example.test",
    body: bytes = b"",
    headers: str = "",
    message_id: bool = True,
    date: bool = True,
) -> bytes:
    """A small RFC 5322 message that carries `token` in its subject and body, so tests can find it."""
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {token}\r\n"
    if message_id:
        head += f"Message-ID: <{token}@sender.test>\r\n"
    if date:
        head += "Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n"
    return (head + headers + "\r\n").encode("utf-8") + f"token={token}\r\n".encode() + body


def client_tls(certificate: str) -> ssl.SSLContext:
    """A client context that trusts exactly the server's self-signed certificate (CN/SAN 127.0.0.1)."""
    return ssl.create_default_context(cafile=certificate)
