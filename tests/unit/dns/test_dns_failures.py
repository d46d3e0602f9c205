"""Temporary failures (SERVFAIL, REFUSED, timeouts, network errors) and transport fallbacks."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from courriel.core.errors import ConfigError, TransientError
from courriel.dns import DnsTemporaryFailure, NextHop, NextHopResolver, NoSuchDomain


def closed_udp_port() -> str:
    """A loopback port nothing listens on (the query is lost: a network error, seen as a timeout)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("behaviour", ["servfail", "refused"])
async def test_server_failure_is_transient(serve, make_resolver, behaviour):
    server = await serve({"example.net": {"behaviour": behaviour}})
    with pytest.raises(DnsTemporaryFailure) as caught:
        await make_resolver(server, attempts=2).mx_hosts("example.net")
    assert isinstance(caught.value, TransientError)
    assert caught.value.public.startswith("451 4.4.3 ")
    assert behaviour.upper() in caught.value.detail
    assert server.queries == [("example.net", "MX")] * 2  # one per attempt


async def test_timeout_is_transient_and_bounded(serve, make_resolver):
    server = await serve({"example.net": {"behaviour": "timeout"}})
    started = time.monotonic()
    with pytest.raises(DnsTemporaryFailure) as caught:
        await make_resolver(server, timeout=0.2, attempts=2).mx_hosts("example.net")
    assert time.monotonic() - started < 2.0
    assert "timed out" in caught.value.detail
    assert server.queries == [("example.net", "MX")] * 2


async def test_network_error_is_transient(make_resolver):
    with pytest.raises(DnsTemporaryFailure):
        await make_resolver(closed_udp_port()).mx_hosts("example.net")


async def test_next_nameserver_answers_when_the_first_fails(zone, serve, make_resolver):
    silent = await serve({name: {"behaviour": "timeout"} for name in zone})
    failing = await serve({name: {"behaviour": "servfail"} for name in zone})
    good = await serve(zone)
    resolver = make_resolver(closed_udp_port(), silent, failing, good, timeout=0.2)
    hops = await resolver.mx_hosts("example.net")
    assert [h.host for h in hops] == ["mx1.example.net", "mx2.example.net"]
    # Every question went down the list: past the closed port, the silent and the failing server.
    assert len(good.queries) == 5
    assert sorted(silent.queries) == sorted(failing.queries) == sorted(good.queries)


async def test_one_exchanger_failing_leaves_the_others(zone, serve, make_resolver):
    zone["mx1.example.net"]["behaviour"] = "servfail"
    hops = await make_resolver(await serve(zone)).mx_hosts("example.net")
    assert hops == [NextHop("mx2.example.net", 20, ("127.0.0.22",))]


async def test_aaaa_failing_keeps_the_ipv4_addresses(zone, serve, make_resolver):
    zone["mx1.example.net"]["behaviour"] = {"AAAA": "timeout"}
    hops = await make_resolver(await serve(zone), timeout=0.2).mx_hosts("example.net")
    assert hops[0] == NextHop("mx1.example.net", 10, ("127.0.0.21",))


async def test_truncated_udp_answer_is_retried_over_tcp(zone, serve, make_resolver):
    zone["example.net"]["behaviour"] = {"MX": "truncate"}
    server = await serve(zone)
    hops = await make_resolver(server).mx_hosts("example.net")
    assert [h.host for h in hops] == ["mx1.example.net", "mx2.example.net"]
    assert [(q.name, q.type, q.transport) for q in server.log[:2]] == [
        ("example.net", "MX", "udp"),
        ("example.net", "MX", "tcp"),
    ]


async def test_answer_too_big_for_udp_comes_over_tcp(serve, make_resolver):
    addresses = [f"127.0.{i // 250}.{i % 250 + 1}" for i in range(400)]  # ~6 kB, above 1232
    server = await serve({"big.example.net": {"A": addresses}})
    assert await make_resolver(server).addresses("big.example.net") == tuple(addresses)
    assert ("big.example.net", "A", "tcp") in [(q.name, q.type, q.transport) for q in server.log]


async def test_addresses_of_a_host(zone, serve, make_resolver):
    zone = zone | {
        "smarthost.example.net": {"CNAME": "mx1.example.net."},
        "bare.example.net": {"TXT": '"none"'},
        "flaky.example.net": {"behaviour": "servfail"},
    }
    server = await serve(zone)
    resolver = make_resolver(server)
    assert await resolver.addresses("smarthost.example.net.") == ("127.0.0.21", "::1")
    assert await resolver.addresses("bare.example.net") == ()
    with pytest.raises(NoSuchDomain):
        await resolver.addresses("gone.example.net")
    with pytest.raises(DnsTemporaryFailure):
        await resolver.addresses("flaky.example.net")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8::7", "2001:db8::7"),
        ("[192.0.2.7]", "192.0.2.7"),
        ("[IPv6:::1]", "::1"),
    ],
)
async def test_addresses_of_an_ip_literal_ask_nothing(serve, make_resolver, host, expected):
    server = await serve({})
    assert await make_resolver(server).addresses(host) == (expected,)
    assert server.queries == []


@pytest.mark.parametrize(
    "options", [{"nameservers": []}, {"nameservers": ["dns.example"]}, {"timeout": 0}, {"attempts": 0}]
)
def test_bad_settings_are_config_errors(options):
    with pytest.raises(ConfigError):
        NextHopResolver(**({"nameservers": ["127.0.0.1"]} | options))


@pytest.mark.skipif(not Path("/etc/resolv.conf").exists(), reason="no system resolver configuration")
def test_system_configuration_is_read():
    NextHopResolver(None)  # built from /etc/resolv.conf, never asked: the suite has no outside network
