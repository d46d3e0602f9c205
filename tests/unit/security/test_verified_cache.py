"""The short-lived cache of verified passwords (security/passwords.py VerifiedCache): a hit
only for the same stored hash and password within the TTL; a changed password (a new stored
hash) or a wrong one always goes to argon2; failures are never remembered."""

from __future__ import annotations

import asyncio

import pytest

from courriel.security import passwords
from courriel.security.passwords import VerifiedCache, ahash_password, averify_password
from tests.unit.security.test_login_throttle import Clock


def test_hits_within_the_ttl_only() -> None:
    clock = Clock()
    cache = VerifiedCache(ttl=300, clock=clock)
    assert not cache.hit("$argon2id$stored", "pw")
    cache.remember("$argon2id$stored", "pw")
    assert cache.hit("$argon2id$stored", "pw")
    assert not cache.hit("$argon2id$stored", "pw2")
    assert not cache.hit("$argon2id$other", "pw")  # the password was changed: new hash
    clock.now += 301
    assert not cache.hit("$argon2id$stored", "pw")


def test_size_is_bounded() -> None:
    cache = VerifiedCache(size=3)
    for i in range(5):
        cache.remember(f"h{i}", "pw")
    assert [cache.hit(f"h{i}", "pw") for i in range(5)] == [False, False, True, True, True]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The passwords argon2 was asked to verify, in order."""
    seen: list[str] = []
    real = passwords.verify_password

    def counting(stored_hash: str | None, password: str) -> bool:
        seen.append(password)
        return real(stored_hash, password)

    monkeypatch.setattr(passwords, "verify_password", counting)
    return seen


async def test_verify_uses_it_and_never_remembers_a_failure(calls: list[str]) -> None:
    cache = VerifiedCache()
    stored = await ahash_password("s3cret")
    assert not await averify_password(stored, "wrong", cache)
    assert not await averify_password(stored, "wrong", cache)
    assert await averify_password(stored, "s3cret", cache)
    assert await averify_password(stored, "s3cret", cache)
    assert not await averify_password(await ahash_password("new"), "s3cret", cache)
    assert calls == ["wrong", "wrong", "s3cret", "s3cret"]


async def test_checks_of_one_pair_at_once_share_one_hash(calls: list[str]) -> None:
    cache = VerifiedCache()
    stored = await ahash_password("s3cret")
    good = await asyncio.gather(*(averify_password(stored, "s3cret", cache) for _ in range(5)))
    bad = await asyncio.gather(*(averify_password(stored, "nope", cache) for _ in range(3)))
    assert good == [True] * 5 and bad == [False] * 3
    assert calls == ["s3cret", "nope"]
    assert not await averify_password(stored, "nope", cache)  # a failure is never remembered
    assert calls == ["s3cret", "nope", "nope"]
