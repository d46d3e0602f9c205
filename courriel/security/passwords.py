"""Password hashing: argon2id for every stored credential (DESIGN §6, "security by default").

Used by the organization directory when a password is set, and by every login path (SMTP AUTH,
IMAP, POP3, the admin API) to check one. Parameters follow the OWASP Password Storage Cheat Sheet
(2023) minimum for argon2id: m=19 MiB, t=2, p=1, which verifies in about 30 ms on one core.

Hashing costs CPU and memory on purpose, so the coroutine wrappers run it in a worker thread:
nothing here may run on the event loop (DESIGN §6). The default executor bounds how many run at
once (and so the memory: 19 MiB each).
"""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher, Type
from argon2.exceptions import Argon2Error, InvalidHashError

TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1

_HASHER = PasswordHasher(
    time_cost=TIME_COST,
    memory_cost=MEMORY_COST_KIB,
    parallelism=PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)


def hash_password(password: str) -> str:
    """Return a PHC string (``$argon2id$v=19$m=19456,t=2,p=1$salt$hash``) for `password`."""
    return _HASHER.hash(password)


@functools.cache
def _dummy_hash() -> str:
    # Computed once, on first need, so that importing this module costs nothing.
    return _HASHER.hash("courriel-dummy-password")


def verify_password(stored: str | None, password: str) -> bool:
    """True only if `password` matches `stored`; False on any mismatch or malformed hash.

    `stored` may be None for an unknown user or one without a password: a dummy hash is
    verified all the same, so that the answer takes as long as for a real user and response
    times do not tell which names exist. argon2 compares digests in constant time.
    """
    if stored is None:
        _safe_verify(_dummy_hash(), password)
        return False
    return _safe_verify(stored, password)


def _safe_verify(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (Argon2Error, ValueError, TypeError):
        # Argon2Error covers VerifyMismatchError, VerificationError and InvalidHashError;
        # ValueError/TypeError cover text that is not even a string the library can encode.
        return False


def needs_rehash(stored: str) -> bool:
    """True if `stored` was made with other parameters (or is malformed) and should be
    replaced by a fresh hash after the next successful login."""
    try:
        return _HASHER.check_needs_rehash(stored)
    except (InvalidHashError, ValueError, TypeError):
        return True


async def ahash_password(password: str) -> str:
    """`hash_password` in a worker thread."""
    return await asyncio.to_thread(hash_password, password)


async def averify_password(stored: str | None, password: str) -> bool:
    """`verify_password` in a worker thread."""
    return await asyncio.to_thread(verify_password, stored, password)
