"""SASL PLAIN for POP3 AUTH (RFC 5034 framing, RFC 4616 mechanism).

The client's response is base64 of "authzid NUL authcid NUL passwd". In POP3 an empty initial
response is sent as "=" (RFC 5034 §4), and a line holding only "*" cancels the exchange.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

CANCEL = "*"


class SaslError(ValueError):
    """The response is malformed; the text is safe to send to the client."""


@dataclass(frozen=True)
class PlainCredentials:
    authzid: str
    authcid: str
    password: str = field(repr=False)


def decode_plain(response: str) -> PlainCredentials:
    """Decode one base64 PLAIN response (the initial response or a continuation line)."""
    text = response.strip()
    if text == "=":
        text = ""  # RFC 5034 §4: "=" stands for an empty initial response
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        # RFC 5034 §4: a response that is not valid base64 MUST be rejected.
        raise SaslError("Invalid base64 in SASL response") from None
    parts = raw.split(b"\x00")
    if len(parts) != 3:
        raise SaslError("Malformed PLAIN response")
    try:
        authzid, authcid, password = (part.decode("utf-8") for part in parts)
    except UnicodeDecodeError:
        raise SaslError("PLAIN response is not valid UTF-8") from None
    # RFC 4616 §2: authcid and passwd are each at least one character.
    if not authcid or not password:
        raise SaslError("Malformed PLAIN response")
    return PlainCredentials(authzid, authcid, password)
