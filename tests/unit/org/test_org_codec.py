"""Settings objects to and from JSON documents, with every value checked against the model's types."""

from __future__ import annotations

import json
from typing import Any

import pytest

from courriel.core.errors import PermanentError
from courriel.org.codec import apply_changes, build, exchange_name, to_document
from courriel.org.defaults import default_receive_connectors
from courriel.org.model import AuthMechanism, ProtocolSettings, ReceiveConnector, SendConnector


def test_documents_round_trip_through_json() -> None:
    for connector in default_receive_connectors("EX01", ["client-access", "mailbox"]):
        document = json.loads(json.dumps(to_document(connector)))
        assert build(ReceiveConnector, document, "c") == connector
    send = SendConnector(name="Out", address_spaces=(("*", 1), ("example.com", 5)), smart_hosts=("a",))
    assert build(SendConnector, json.loads(json.dumps(to_document(send))), "c") == send


def test_changes_are_converted_and_checked() -> None:
    (connector, *_) = default_receive_connectors("EX01", ["mailbox"])
    changed = apply_changes(
        connector, {"auth_mechanisms": ["tls", "BASICAUTH"], "connection_timeout": 30}, "c"
    )
    assert changed.auth_mechanisms == (AuthMechanism.TLS, AuthMechanism.BASIC_AUTH)
    assert changed.connection_timeout == 30.0 and isinstance(changed.connection_timeout, float)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"enabled": "yes"}, "expected true or false"),
        ({"max_message_size": 1.5}, "expected a whole number"),
        ({"max_message_size": True}, "expected a whole number"),
        ({"bindings": "0.0.0.0:25"}, "expected a list"),
        ({"banner": 220}, "expected text"),
        ({"transport_role": None}, "cannot be empty"),
        ({"server": "OTHER"}, "no settable parameter 'server'"),
    ]
    for changes, error in cases:
        with pytest.raises(PermanentError, match=error):
            apply_changes(connector, changes, "c", fixed=("server",))
    assert apply_changes(ProtocolSettings(), {"banner": None}, "p").banner is None


def test_exchange_names() -> None:
    assert exchange_name("max_message_size") == "MaxMessageSize"
    assert exchange_name("remote_ip_ranges") == "RemoteIPRanges"
    assert exchange_name("auth_mechanisms") == "AuthMechanism"
    assert exchange_name("dns_routing_enabled") == "DNSRoutingEnabled"
