"""argon2id password hashing: format, parameters, malformed input, speed, and the thread seam."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from hypothesis import given, settings
from hypothesis import strategies as st

from courriel.security.passwords import (
    ahash_password,
    averify_password,
    hash_password,
    needs_rehash,
    verify_password,
)

HASH = hash_password("correct horse")


def test_hash_is_argon2id_with_owasp_parameters() -> None:
    assert HASH.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hash_password("correct horse") != HASH  # fresh salt each time


def test_verify_accepts_only_the_password() -> None:
    assert verify_password(HASH, "correct horse")
    assert not verify_password(HASH, "correct horsf")
    assert not verify_password(HASH, "")
    assert not verify_password(HASH, "correct horse ")


def test_unicode_password_round_trips() -> None:
    stored = hash_password("pässwörd ✉")
    assert verify_password(stored, "pässwörd ✉")
    assert not verify_password(stored, "passwort ✉")


def test_unknown_user_is_refused() -> None:
    assert not verify_password(None, "anything")


def test_malformed_hashes_are_refused_not_raised() -> None:
    for stored in ["", "plain", "$argon2id$", "$argon2id$v=19$m=19456,t=2,p=1$abc$def", HASH[:-4], "\x00"]:
        assert not verify_password(stored, "correct horse")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120), st.text(max_size=40))
def test_verify_never_raises(stored: str, password: str) -> None:
    assert verify_password(stored, password) is False


def test_needs_rehash() -> None:
    assert not needs_rehash(HASH)
    weaker = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID).hash("x")
    assert needs_rehash(weaker)
    argon2i = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.I).hash("x")
    assert needs_rehash(argon2i)
    assert needs_rehash("not a hash")


async def test_async_wrappers_leave_the_event_loop_free() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        stored = await ahash_password("s3cret")
        assert await averify_password(stored, "s3cret")
        assert not await averify_password(stored, "wrong")
        assert not await averify_password(None, "s3cret")
    finally:
        task.cancel()
    # Four hashing operations take ~100 ms; a blocked loop would have ticked at most 4 times.
    assert ticks > 10
