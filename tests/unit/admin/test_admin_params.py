"""Parameter values as administrators type them (sizes, booleans, time spans, lists) and how they print."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courriel.admin.cli.render import format_duration, format_size, print_table
from courriel.admin.commands.params import (
    UNITS,
    parse_bool,
    parse_duration,
    parse_params,
    parse_size,
    parse_value,
)
from courriel.admin.commands.records import record
from courriel.core.errors import PermanentError
from courriel.org.model import (
    MB,
    AuthMechanism,
    ProtocolSettings,
    ReceiveConnector,
    Recipient,
    RecipientKind,
    SendConnector,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("36MB", 36 * MB),
        ("512KB", 512 * 1024),
        ("1.5 GB", 3 * 512 * MB),
        ("1048576", MB),
        ("10b", 10),
        ("unlimited", None),
    ],
)
def test_sizes(text: str, expected: int | None) -> None:
    assert parse_size(text) == expected


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(UNITS)))
def test_size_units_are_binary(amount: int, unit: str) -> None:
    assert parse_size(f"{amount}{unit.lower()}") == amount * UNITS[unit]


@pytest.mark.parametrize("text", ["36XB", "MB", "-1MB", "", "36 M B"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(PermanentError, match="is not a size"):
        parse_size(text)


def test_booleans() -> None:
    assert [parse_bool(t) for t in ("true", "$TRUE", "yes", "false", "$false", "No")] == [True] * 3 + [
        False
    ] * 3
    with pytest.raises(PermanentError, match="not true or false"):
        parse_bool("1")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("600", 600),
        ("30s", 30),
        ("10min", 600),
        ("4h", 14400),
        ("2d", 172800),
        ("00:10:00", 600),
        ("1.02:00:00", 93600),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@given(st.integers(min_value=0, max_value=30 * 86400))
def test_timespans_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_values_follow_the_model_field_types() -> None:
    assert parse_value(ReceiveConnector, "max_message_size", "20MB") == 20 * MB
    assert parse_value(ReceiveConnector, "remote_ip_ranges", "10.0.0.0/8, 192.0.2.7") == [
        "10.0.0.0/8",
        "192.0.2.7",
    ]
    assert parse_value(ReceiveConnector, "require_tls", "$true") is True
    assert parse_value(ReceiveConnector, "connection_timeout", "00:05:00") == 300.0
    assert parse_value(ReceiveConnector, "banner", "$null") is None
    assert parse_value(ReceiveConnector, "banner", "220 hello, world") == "220 hello, world"
    assert parse_value(SendConnector, "address_spaces", "SMTP:*;100,example.com") == [
        ("SMTP:*", 100),
        ("example.com", 1),
    ]
    assert parse_value(ProtocolSettings, "max_connections", "5") == 5
    assert parse_value(ProtocolSettings, "external_connection_settings", "$null") == []
    with pytest.raises(PermanentError, match="MaxMessageSize: this size cannot be unlimited"):
        parse_value(ReceiveConnector, "max_message_size", "unlimited")
    with pytest.raises(PermanentError, match="MaxRecipientsPerMessage: 'many' is not a whole number"):
        parse_value(ReceiveConnector, "max_recipients_per_message", "many")
    with pytest.raises(PermanentError, match="the cost must be a number"):
        parse_value(SendConnector, "address_spaces", "*;cheap")
    assert parse_params(ReceiveConnector, {"enabled": "false", "banner": None}) == {"enabled": False}
    with pytest.raises(PermanentError, match="unknown parameter 'colour'"):
        parse_params(ReceiveConnector, {"colour": "blue"})


def test_rendering() -> None:
    assert format_size(36 * MB) == "36 MB (37,748,736 bytes)"
    assert format_size(1536) == "1.5 KB (1,536 bytes)"
    assert format_size(None) == "Unlimited"
    assert format_duration(2 * 86400) == "2.00:00:00"

    class Out:
        text = ""

        def write(self, chunk: str) -> None:
            self.text += chunk

    out = Out()
    print_table(
        [
            {
                "name": "Default Frontend EX01",
                "auth": [AuthMechanism.TLS, AuthMechanism.BASIC_AUTH],
                "on": True,
            }
        ],
        [("name", "Name"), ("auth", "AuthMechanism"), ("on", "Enabled")],
        out,  # type: ignore[arg-type]
    )
    assert out.text.splitlines() == [
        "Name                   AuthMechanism   Enabled",
        "----                   -------------   -------",
        "Default Frontend EX01  Tls, BasicAuth  True",
    ]


def test_records_hold_no_secrets() -> None:
    mailbox = Recipient(
        1, RecipientKind.MAILBOX, "A", "a@example.test", ("a@example.test",), password_hash="$argon2id$x"
    )
    assert "password_hash" not in record(mailbox) and record(mailbox)["has_password"] is True
    smart = SendConnector(name="S", address_spaces=(("*", 1),), auth_password="secret")
    assert record(smart)["auth_password"] == "********"
