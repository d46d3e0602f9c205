"""Fixtures for the next-hop resolver tests: a real DNS server on loopback and a clock to move."""

from __future__ import annotations

import copy
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from courriel.dns import NextHopResolver
from tests.dnsserver import DnsServer, Records, start_dns_server

# A zone most tests share: a domain with two exchangers, one of them dual-stack.
ZONE: Records = {
    "example.net": {"MX": [(20, "mx2.example.net."), (10, "mx1.example.net.")], "ttl": 300},
    "mx1.example.net": {"A": ["127.0.0.21"], "AAAA": ["::1"], "ttl": 300},
    "mx2.example.net": {"A": ["127.0.0.22"], "ttl": 300},
}

Serve = Callable[..., Awaitable[DnsServer]]


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def zone() -> Records:
    """A fresh copy of ZONE, for the test to change at will."""
    return copy.deepcopy(ZONE)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start DNS servers on loopback (`await serve(records, host=…)`); all stop at teardown."""
    servers: list[DnsServer] = []

    async def start(records: Records, host: str = "127.0.0.1", **options: Any) -> DnsServer:
        server = await start_dns_server(records, host, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
def make_resolver(clock: FakeClock) -> Callable[..., NextHopResolver]:
    """A resolver on the fake clock with short timeouts and a seeded random source."""

    def make(*servers: DnsServer | str, **options: Any) -> NextHopResolver:
        nameservers = [s if isinstance(s, str) else s.address for s in servers]
        options = {"timeout": 0.3, "attempts": 1, "clock": clock, "rng": random.Random(7)} | options
        return NextHopResolver(nameservers, **options)

    return make
