"""Password hashing: argon2id for every stored credential (DESIGN §6, "security by default").

Used by the organization directory when a password is set, and by every login path (SMTP AUTH,
IMAP, POP3, the admin API) to check one. Parameters follow the OWASP Password Storage Cheat Sheet
(2023) minimum for argon2id: m=19 MiB, t=2, p=1, which verifies in about 30 ms on one core.

Hashing costs CPU and memory on purpose, so the coroutine wrappers run it in a worker thread:
nothing here may run on the event loop (DESIGN §6). The default executor bounds how many run at
once (and so the memory: 19 MiB each). Two consequences are handled here:
- glibc serves a freed 19 MiB block's successors from the worker thread's arena once its
  dynamic mmap threshold has grown past it, and never gives that memory back: 500 IMAP logins
  left 140 MiB resident. `_keep_large_blocks_mapped` fixes the threshold at 1 MiB, so large
  blocks are mmapped and returned to the system when freed.
- a mail client logs in again and again (one connection per folder, reconnects): a successful
  check is remembered for `VERIFIED_TTL` seconds (`VerifiedCache`), keyed by a keyed BLAKE2b of
  the stored hash and the password; a changed password is a new stored hash (new salt), so the
  entry no longer matches the moment the directory has it.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import hashlib
import os
import sys
import time
from collections.abc import Callable

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
VERIFIED_TTL = 300.0  # seconds a successful check is remembered
VERIFIED_MAX = 10_000  # entries; the oldest go first
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
MMAP_THRESHOLD = 1024 * 1024


def _keep_large_blocks_mapped() -> None:
    """glibc only: blocks of 1 MiB and more are mmapped, so argon2's memory is given back."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):  # another C library (musl): nothing to tune
        pass


_keep_large_blocks_mapped()


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


class VerifiedCache:
    """Recently verified (stored hash, password) pairs of this process, for `ttl` seconds.

    Only keyed digests are kept (a random key per process), never a password; failures are
    not remembered, so a wrong password always costs a full argon2 check. Checks of the same
    pair that arrive while one runs (a client opening five connections at once) share it."""

    def __init__(
        self, ttl: float = VERIFIED_TTL, size: int = VERIFIED_MAX, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._key = os.urandom(32)
        self._expires: dict[bytes, float] = {}
        self._running: dict[bytes, asyncio.Future[bool]] = {}

    def _digest(self, stored: str, password: str) -> bytes:
        data = stored.encode() + b"\0" + password.encode("utf-8", "surrogatepass")
        return hashlib.blake2b(data, key=self._key, digest_size=32).digest()

    def _fresh(self, digest: bytes) -> bool:
        # A dict lookup, not a constant-time compare: the digests are keyed with a secret the
        # peer never sees, so timing tells it nothing about the password.
        expires = self._expires.get(digest)
        if expires is None:
            return False
        if expires <= self._clock():
            del self._expires[digest]
            return False
        return True

    def hit(self, stored: str, password: str) -> bool:
        return self._fresh(self._digest(stored, password))

    def remember(self, stored: str, password: str) -> None:
        self._remember(self._digest(stored, password))

    def _remember(self, digest: bytes) -> None:
        self._expires.pop(digest, None)
        while len(self._expires) >= self.size:
            del self._expires[next(iter(self._expires))]
        self._expires[digest] = self._clock() + self.ttl

    async def verify(self, stored: str, password: str) -> bool:
        """`verify_password` in a worker thread, unless the pair was verified lately."""
        digest = self._digest(stored, password)
        if self._fresh(digest):
            return True
        running = self._running.get(digest)
        if running is None:
            running = asyncio.ensure_future(asyncio.to_thread(verify_password, stored, password))
            self._running[digest] = running
            running.add_done_callback(lambda done: self._settle(digest, done))
        return await asyncio.shield(running)  # one waiter leaving does not cancel the others'

    def _settle(self, digest: bytes, done: asyncio.Future[bool]) -> None:
        self._running.pop(digest, None)
        if not done.cancelled() and done.exception() is None and done.result():
            self._remember(digest)

    def clear(self) -> None:
        self._expires.clear()


VERIFIED = VerifiedCache()


async def averify_password(stored: str | None, password: str, cache: VerifiedCache | None = VERIFIED) -> bool:
    """`verify_password` in a worker thread, unless `cache` verified the same pair lately."""
    if stored is None or cache is None:
        return await asyncio.to_thread(verify_password, stored, password)
    return await cache.verify(stored, password)
