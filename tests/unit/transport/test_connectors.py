"""Receive connector selection (most specific RemoteIPRanges) and permission-group rights."""

from __future__ import annotations

from courriel.org.ipranges import parse_binding
from courriel.org.model import PermissionGroup as PG
from courriel.org.model import ReceiveConnector, TransportRole
from courriel.transport.receive.connectors import Right, rights, select_connector


def conn(name: str, ranges: tuple[str, ...], groups: tuple[PG, ...] = (PG.ANONYMOUS_USERS,), enabled: bool = True) -> ReceiveConnector:
    return ReceiveConnector("mx1", name, TransportRole.FRONTEND, ("0.0.0.0:25",), remote_ip_ranges=ranges, permission_groups=groups, enabled=enabled)


def test_most_specific_range_wins() -> None:
    connectors = [conn("all", ("0.0.0.0-255.255.255.255",)), conn("lan", ("10.0.0.0/8",)), conn("host", ("10.1.2.3",)), conn("off", ("10.1.2.3/32",), enabled=False)]
    b = parse_binding("0.0.0.0:25")
    assert select_connector(connectors, b, "192.0.2.1").name == "all"
    assert select_connector(connectors, b, "10.9.9.9").name == "lan"
    assert select_connector(connectors, b, "10.1.2.3").name == "host"
    assert select_connector(connectors, b, "::ffff:10.1.2.3").name == "host"
    assert select_connector(connectors, parse_binding("0.0.0.0:587"), "10.1.2.3") is None
    assert select_connector([conn("lan", ("10.0.0.0/8",))], b, "192.0.2.1") is None


def test_rights_by_identity() -> None:
    frontend = conn("fe", ("0.0.0.0/0",), (PG.ANONYMOUS_USERS, PG.EXCHANGE_SERVERS))
    anon = rights(frontend, authenticated_user=False, authenticated_server=False)
    assert anon & Right.SUBMIT and not anon & Right.ACCEPT_ANY_RECIPIENT
    client = conn("client", ("0.0.0.0/0",), (PG.EXCHANGE_USERS,))
    assert not rights(client, authenticated_user=False, authenticated_server=False) & Right.SUBMIT
    user = rights(client, authenticated_user=True, authenticated_server=False)
    assert user & Right.ACCEPT_ANY_RECIPIENT and not user & Right.ACCEPT_ANY_SENDER
    assert rights(frontend, authenticated_user=False, authenticated_server=True) & Right.BYPASS_MESSAGE_SIZE_LIMIT
