"""Identifiers: sortable queue ids and RFC 5322 Message-IDs."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as ULIDs use


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id() -> str:
    """A 26-character ULID: time-ordered (so the queue lists oldest first) and unique across processes."""
    millis = int(time.time() * 1000)
    return _b32(millis, 10) + _b32(int.from_bytes(os.urandom(10), "big"), 16)


def new_message_id(fqdn: str) -> str:
    """A Message-ID header value for mail submitted without one (RFC 5322 §3.6.4)."""
    return f"<{new_id()}@{fqdn}>"
