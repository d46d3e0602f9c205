"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3), the IMAP4rev1 wire form of non-ASCII names.

Printable US-ASCII stands for itself except "&", written "&-"; any other run of characters is
UTF-16BE in modified BASE64 ("," for "/", no padding) between "&" and "-". Decoding is strict
(RFC 3501 §5.1.3: the shortest form is the only valid one) so that one name has one spelling.
Whether names are mUTF-7 or UTF-8 on a connection (RFC 9051 §5.1, RFC 6855 UTF8=ACCEPT) is the
engine's choice; it calls these functions only for IMAP4rev1 clients.
"""

from __future__ import annotations

import binascii
import re
from typing import Final

_RUN: Final = re.compile(r"[^\x20-\x7e]+")
_RUN_OR_AMP: Final = re.compile(r"[^\x20-\x7e]+|&")
_SHIFTED: Final = re.compile(r"&([A-Za-z0-9+,]*)-")


class Mutf7Error(ValueError):
    """A name that is not valid modified UTF-7."""


def encode(name: str) -> str:
    """Unicode name → modified UTF-7."""

    def shift(m: re.Match[str]) -> str:
        if m.group() == "&":
            return "&-"
        raw = m.group().encode("utf-16-be", "surrogatepass")
        b64 = binascii.b2a_base64(raw, newline=False).decode("ascii")
        return "&" + b64.rstrip("=").replace("/", ",") + "-"

    return _RUN_OR_AMP.sub(shift, name)


def decode(name: str) -> str:
    """Modified UTF-7 → Unicode; raises Mutf7Error on anything but the canonical form."""
    if not name.isascii() or _RUN.search(name):
        raise Mutf7Error("8-bit or control characters in a modified UTF-7 name")
    out: list[str] = []
    pos = 0
    last_end = -1
    for m in _SHIFTED.finditer(name):
        if "&" in name[pos : m.start()]:
            raise Mutf7Error("unterminated '&' sequence")
        out.append(name[pos : m.start()])
        body = m.group(1)
        if not body:
            out.append("&")
        else:
            # RFC 3501 §5.1.3: two adjacent encoded runs are not the shortest form.
            if m.start() == last_end:
                raise Mutf7Error("adjacent encoded sequences")
            out.append(_decode_run(body))
            last_end = m.end()
        pos = m.end()
    rest = name[pos:]
    if "&" in rest:
        raise Mutf7Error("unterminated '&' sequence")
    out.append(rest)
    return "".join(out)


def _decode_run(body: str) -> str:
    if len(body) % 4 == 1:
        raise Mutf7Error("truncated base64")
    padded = body.replace(",", "/") + "=" * (-len(body) % 4)
    raw = binascii.a2b_base64(padded)
    if len(raw) % 2:
        raise Mutf7Error("odd UTF-16 length")
    # Leftover bits past the last UTF-16 unit must be zero (RFC 2152 §"Rules" via RFC 3501).
    if binascii.b2a_base64(raw, newline=False).decode("ascii").rstrip("=") != padded.rstrip("="):
        raise Mutf7Error("non-zero padding bits")
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError:
        raise Mutf7Error("invalid UTF-16") from None
    if any(0x20 <= ord(ch) <= 0x7E for ch in text):
        raise Mutf7Error("printable ASCII must not be encoded")
    return text


def is_valid(name: str) -> bool:
    try:
        decode(name)
    except Mutf7Error:
        return False
    return True
