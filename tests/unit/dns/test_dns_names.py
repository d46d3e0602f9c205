"""Parsers of the resolver: nameserver endpoints, domain names (IDNA), address literals."""

from __future__ import annotations

import ipaddress

import dns.name
import pytest
from hypothesis import given
from hypothesis import strategies as st

from courriel.core.errors import ConfigError
from courriel.dns import NoSuchDomain
from courriel.dns.lookup import parse_endpoint
from courriel.dns.names import address_literal, host_text, query_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.53", ("127.0.0.53", 53)),
        ("10.0.0.2:5353", ("10.0.0.2", 5353)),
        ("[::1]:5353", ("::1", 5353)),
        ("[::1]", ("::1", 53)),
        ("::1", ("::1", 53)),
        ("2001:DB8::53", ("2001:db8::53", 53)),
    ],
)
def test_endpoint(text, expected):
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "dns.example",
        "10.0.0.2:",
        "10.0.0.2:0",
        "10.0.0.2:65536",
        "10.0.0.2:x",
        "[10.0.0.2]:53",
        "[::1]:",
        "[::1]53",
        "[::1",
        "::1:53:",
    ],
)
def test_bad_endpoint(text):
    with pytest.raises(ConfigError):
        parse_endpoint(text)


@given(st.ip_addresses(), st.integers(1, 65535))
def test_endpoint_round_trip(address, port):
    text = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    assert parse_endpoint(text) == (str(address), port)


@given(st.text(max_size=60))
def test_endpoint_never_fails_otherwise(text):
    try:
        host, port = parse_endpoint(text)
    except ConfigError:
        return
    ipaddress.ip_address(host)
    assert 0 < port < 65536


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("Example.NET", "example.net"),
        ("example.net.", "example.net"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),  # UTS #46 mapping folds case
        ("straße.example", "xn--strae-oqa.example"),  # IDNA 2008, not 2003's "strasse"
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
    ],
)
def test_query_name(domain, expected):
    name = query_name(domain)
    assert name.is_absolute()
    assert host_text(name) == expected


@pytest.mark.parametrize(
    "domain",
    [
        "",
        ".",
        "@",
        "a..b",
        "-a.example",
        "a_b.example",
        "a b.example",
        "x\\046y.example",
        "x" * 64 + ".example",
        ("a." * 130) + "example",
    ],
)
def test_bad_query_name(domain):
    with pytest.raises(NoSuchDomain):
        query_name(domain)


@given(st.text(max_size=80))
def test_query_name_gives_a_name_or_no_such_domain(text):
    try:
        name = query_name(text)
    except NoSuchDomain as exc:
        assert exc.public.startswith("550 5.4.4 ")
        return
    assert isinstance(name, dns.name.Name) and name.is_absolute() and len(name) >= 2


@pytest.mark.parametrize(
    ("domain", "expected"),
    [("example.net", None), ("[127.0.0.1]", "127.0.0.1"), ("[IPv6:::FFFF:192.0.2.1]", "::ffff:c000:201")],
)
def test_address_literal(domain, expected):
    assert address_literal(domain) == expected


@given(st.text(max_size=50).map(lambda s: "[" + s))
def test_address_literal_gives_an_address_or_no_such_domain(text):
    try:
        address = address_literal(text)
    except NoSuchDomain:
        return
    assert address is not None
    ipaddress.ip_address(address)
