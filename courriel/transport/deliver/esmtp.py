"""The SMTP client's wire rules, sans I/O: replies, EHLO keywords, commands, the body, and what a
message needs from the next hop.

`deliver/client.py` moves these bytes over a socket. Followed here: RFC 5321 §4.2 (reply
syntax, multi-line replies), §4.5.2 (dot-stuffing), §2.3.8 (CRLF only); RFC 2034 (enhanced
codes); RFC 1870 SIZE; RFC 6152 8BITMIME; RFC 3030 CHUNKING/BINARYMIME; RFC 6531 SMTPUTF8;
RFC 3461 DSN parameters (xtext, RFC 6533 utf-8-addr-xtext for internationalized ORCPT).
A message the next hop cannot take is refused with a permanent reply of ours (5.6.7, 5.6.3,
5.3.4): we do not downgrade content (RFC 6152 §3 lets the client bounce instead).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from courriel.core.replies import Reply
from courriel.proto.smtp.params import encode_xtext

MAX_REPLY_LINE = 4096  # RFC 5321 §4.5.3.1.5 says 512; be lenient, but bounded
MAX_REPLY_LINES = 200
_FIRST = re.compile(r"^([2-5][0-9][0-9])([ -])(.*)\Z", re.DOTALL)
_ENHANCED = re.compile(r"^([245]\.[0-9]{1,3}\.[0-9]{1,3})(?: |\Z)")
_BARE_LF = re.compile(rb"(?<!\r)\n")


class ProtocolViolation(Exception):
    """The peer broke the reply syntax or its bounds: the connection cannot be trusted further."""


class ReplyReader:
    """Bytes in, complete replies out (RFC 5321 §4.2.1: `code-text` lines, the last `code text`)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._code: str | None = None

    @property
    def pending(self) -> bool:
        """Unconsumed input: after a STARTTLS 220 this is injected plaintext (CVE-2011-0411)."""
        return bool(self._buffer) or bool(self._lines)

    def feed(self, data: bytes) -> list[Reply]:
        self._buffer += data
        replies: list[Reply] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_REPLY_LINE:
                    raise ProtocolViolation("reply line too long")
                return replies
            raw = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            reply = self._line(raw.decode("utf-8", "replace"))
            if reply is not None:
                replies.append(reply)

    def _line(self, line: str) -> Reply | None:
        match = _FIRST.match(line) or (_FIRST.match(line + " ") if len(line) == 3 else None)
        if match is None:
            raise ProtocolViolation(f"malformed reply line {line[:80]!r}")
        code, more, text = match.groups()
        if self._code is not None and code != self._code:
            raise ProtocolViolation("reply code changed inside a multi-line reply")
        self._code = code
        self._lines.append(text)
        if len(self._lines) > MAX_REPLY_LINES:
            raise ProtocolViolation("reply has too many lines")
        if more == "-":
            return None
        lines, self._lines, self._code = self._lines, [], None
        return _reply(int(code), lines)


def _reply(code: int, lines: list[str]) -> Reply:
    enhanced = None
    match = _ENHANCED.match(lines[0])
    if match and match.group(1)[0] == str(code)[0]:  # RFC 2034 §4: class must agree with the code
        enhanced = match.group(1)
        lines = [line[len(enhanced) :].lstrip() if line.startswith(enhanced) else line for line in lines]
    return Reply(code, enhanced, "\n".join(lines))


def describe(reply: Reply) -> str:
    """One line, "550 5.1.1 text …", for the queue, the tracking log and DSNs."""
    text = " ".join(reply.text.split())
    return f"{reply.code} {reply.enhanced} {text}" if reply.enhanced else f"{reply.code} {text}"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an EHLO reply offered (RFC 5321 §4.1.1.1); all False after HELO."""

    esmtp: bool = False
    pipelining: bool = False  # RFC 2920
    starttls: bool = False  # RFC 3207
    eightbitmime: bool = False  # RFC 6152
    smtputf8: bool = False  # RFC 6531
    dsn: bool = False  # RFC 3461
    chunking: bool = False  # RFC 3030
    binarymime: bool = False
    size: int | None = None  # RFC 1870: None when SIZE is not offered, 0 when offered without a limit
    auth: frozenset[str] = frozenset()  # RFC 4954 mechanisms

    @classmethod
    def from_ehlo(cls, reply: Reply) -> Capabilities:
        words = [line.split() for line in reply.text.split("\n")[1:] if line.strip()]
        keys = {w[0].upper(): w[1:] for w in words}
        size = None
        if "SIZE" in keys:
            arg = keys["SIZE"][:1]
            size = int(arg[0]) if arg and arg[0].isdigit() and len(arg[0]) <= 20 else 0
        return cls(
            esmtp=True,
            pipelining="PIPELINING" in keys,
            starttls="STARTTLS" in keys,
            eightbitmime="8BITMIME" in keys,
            smtputf8="SMTPUTF8" in keys,
            dsn="DSN" in keys,
            chunking="CHUNKING" in keys,
            binarymime="BINARYMIME" in keys,
            size=size,
            auth=frozenset(m.upper() for m in keys.get("AUTH", [])),
        )


@dataclass(frozen=True, slots=True)
class Needs:
    """What the message and envelope demand of the next hop."""

    size: int
    smtputf8: bool  # RFC 6531 §3.4: non-ASCII envelope addresses (or SMTPUTF8 at receipt)
    eightbit: bool  # declared 8BITMIME, or 8-bit octets found in the content
    binary: bool  # declared BINARYMIME: only BDAT can carry it (RFC 3030 §3)


def needs_of(sender: str, recipients: Iterable[str], data: bytes, envelope: dict[str, object]) -> Needs:
    body = str(envelope.get("body") or "7BIT").upper()
    utf8 = bool(envelope.get("smtputf8")) or not sender.isascii() or not all(r.isascii() for r in recipients)
    return Needs(
        len(data),
        utf8,
        body == "8BITMIME" or (body != "BINARYMIME" and not data.isascii()),
        body == "BINARYMIME",
    )


def refusal(needs: Needs, caps: Capabilities) -> str | None:
    """Our permanent reply when this next hop cannot take the message as it is, else None."""
    if needs.smtputf8 and not caps.smtputf8:
        return "550 5.6.7 The receiving server does not support internationalized email addresses (SMTPUTF8)"
    if needs.binary and not (caps.chunking and caps.binarymime):
        return "554 5.6.3 The receiving server cannot accept binary content (BINARYMIME) and conversion is not supported"
    if needs.eightbit and not caps.eightbitmime and not needs.smtputf8:
        return "554 5.6.3 The receiving server cannot accept 8-bit content (8BITMIME) and conversion is not supported"
    if caps.size and needs.size > caps.size:
        return f"552 5.3.4 Message too big for the receiving server (its limit is {caps.size} octets)"
    return None


def _path(address: str) -> str:
    return f"<{address}>"


def mail_command(sender: str, needs: Needs, caps: Capabilities, *, ret: str | None, envid: str | None) -> str:
    params = []
    if caps.size is not None:
        params.append(f"SIZE={needs.size}")  # RFC 1870 §6
    if needs.binary:
        params.append("BODY=BINARYMIME")
    elif needs.eightbit and caps.eightbitmime:
        params.append("BODY=8BITMIME")
    if needs.smtputf8:
        params.append("SMTPUTF8")
    if caps.dsn:  # RFC 3461 §4: only to a server that offered DSN
        if ret:
            params.append(f"RET={ret.upper()}")
        if envid:
            params.append(f"ENVID={encode_xtext(envid)}")
    return " ".join([f"MAIL FROM:{_path(sender)}", *params])


def utf8_addr_xtext(address: str) -> str:
    """RFC 6533 §3 utf-8-addr-xtext: QCHARs as is, everything else as \\x{HEX}."""
    out = []
    for char in address:
        code = ord(char)
        if 0x21 <= code <= 0x7E and char not in "+=\\":
            out.append(char)
        else:
            out.append(f"\\x{{{code:X}}}")
    return "".join(out)


def orcpt_param(orcpt: str) -> str:
    kind, _, value = orcpt.partition(";")
    kind = kind.strip().lower() or "rfc822"
    if kind == "rfc822" and not value.isascii():
        kind = "utf-8"  # RFC 6533 §3: the rfc822 type cannot carry non-ASCII
    encoded = utf8_addr_xtext(value) if kind == "utf-8" else encode_xtext(value)
    return f"ORCPT={kind};{encoded}"


def rcpt_command(
    address: str, caps: Capabilities, *, notify: str | None, orcpt: str | None, original: str
) -> str:
    params = []
    if caps.dsn:
        if notify:
            params.append(f"NOTIFY={notify.upper().replace(' ', '')}")
        # RFC 3461 §4.2: pass ORCPT on; without one, name the recipient as we received it.
        params.append(orcpt_param(orcpt or f"rfc822;{original}"))
    return " ".join([f"RCPT TO:{_path(address)}", *params])


def dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: CRLF line ends (RFC 5321 §2.3.8), dots doubled (§4.5.2), `.` to end."""
    if b"\n" in data and data.count(b"\n") != data.count(b"\r\n"):
        data = _BARE_LF.sub(b"\r\n", data)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"
