"""Where outgoing connections leave from: this server's own address toward the organization's
servers, a send connector's SourceIPAddress toward the Internet (transport/deliver/source.py).

The peers below are real listeners on loopback that note the address each connection came
from (every 127.0.0.0/8 address is local on Linux, so a test can leave from 127.0.0.7).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from courriel.clientaccess.http import SourcedTransport
from courriel.core.errors import PermanentError
from courriel.dns import NextHopResolver
from courriel.org.codec import build
from courriel.org.connector_rules import check_send_connector
from courriel.org.directory import Directory
from courriel.org.model import ReceiveConnector, SendConnector, Server, TransportRole
from courriel.transport.deliver.client import ConnectionLost, SmtpClient
from courriel.transport.deliver.organization import OrgLinks
from courriel.transport.deliver.session import SessionFailed, SessionOpener, TlsContexts, endpoints
from courriel.transport.deliver.source import connector_source, source_address
from tests.integration.mailserver import free_offset

HOST = "127.0.0.1"
OURS = "127.0.0.7"  # "this server's" address in these tests
NOT_HERE = "192.0.2.1"  # TEST-NET-1 (RFC 5737): on no interface of this computer


@pytest.mark.parametrize(
    ("listen", "destination", "expected"),
    [
        (("127.0.0.10",), "127.0.0.11", "127.0.0.10"),
        (("0.0.0.0",), "127.0.0.11", None),  # a wildcard listener: the kernel chooses
        (("::",), "::1", None),
        (("0.0.0.0", "127.0.0.10"), "127.0.0.11", "127.0.0.10"),
        (("::1", "127.0.0.10", "127.0.0.20"), "127.0.0.11", "127.0.0.10"),  # the first of the family
        (("127.0.0.10", "::1"), "::1", "::1"),
        (("127.0.0.10",), "::1", None),  # no address of the destination's family
        (("127.0.0.10",), "mbx1.example.test", None),  # a name: its family is unknown until resolved
        ((), "127.0.0.11", None),
    ],
)
def test_source_address(listen: tuple[str, ...], destination: str, expected: str | None) -> None:
    assert source_address(listen, destination) == expected


def test_connector_source() -> None:
    assert connector_source("0.0.0.0") is None
    assert connector_source("::") is None
    assert connector_source("127.0.0.7") == "127.0.0.7"
    assert connector_source("2001:db8::5") == "2001:db8::5"


def _connector(**params: object) -> SendConnector:
    return SendConnector(name="Out", address_spaces=(("*", 1),), **params)  # type: ignore[arg-type]


def test_source_ip_address_is_checked_and_normalized() -> None:
    assert _connector().source_ip_address == "0.0.0.0"
    assert check_send_connector(_connector(), {}).source_ip_address == "0.0.0.0"
    assert check_send_connector(_connector(source_ip_address=" 2001:DB8::0005 "), {}).source_ip_address == (
        "2001:db8::5"
    )
    with pytest.raises(PermanentError, match="SourceIPAddress"):
        check_send_connector(_connector(source_ip_address="mail.example.com"), {})
    with pytest.raises(PermanentError, match="SourceIPAddress"):
        check_send_connector(_connector(source_ip_address="127.0.0.300"), {})


def test_connectors_stored_before_the_parameter_read_back_with_its_default() -> None:
    stored = {"address_spaces": [["*", 1]], "smart_hosts": [], "port": 25}  # no source_ip_address key
    assert build(SendConnector, {**stored, "name": "Old"}, "send connector").source_ip_address == "0.0.0.0"


# -- real connections ------------------------------------------------------------------------


@dataclass
class Listener:
    """An SMTP peer that greets, answers EHLO and QUIT, and notes where each connection came from."""

    port: int = 0
    sources: list[str] = field(default_factory=list)
    http: bool = False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sources.append(writer.get_extra_info("peername")[0])
        try:
            if self.http:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                return
            writer.write(b"220 peer.test ready\r\n")
            for _ in range(10):  # bounded: a test session is a few commands
                line = await reader.readline()
                if not line or line.upper().startswith(b"QUIT"):
                    writer.write(b"221 bye\r\n")
                    break
                writer.write(b"250 peer.test\r\n" if line.upper().startswith(b"EHLO") else b"500 no\r\n")
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def peer() -> AsyncIterator[Listener]:
    yield await _start(Listener())


@pytest.fixture
async def web() -> AsyncIterator[Listener]:
    yield await _start(Listener(http=True))


async def _start(listener: Listener) -> Listener:
    listener.port = free_offset(HOST, (25,)) + 25
    server = await asyncio.start_server(listener._serve, HOST, listener.port)
    asyncio.get_running_loop().call_later(60, server.close)  # bounded even if a test fails
    return listener


async def test_the_client_leaves_from_the_address_it_is_given(peer: Listener) -> None:
    client = await SmtpClient.connect(HOST, peer.port, timeout=5, connect_timeout=5, local_address=OURS)
    assert (await client.greeting()).code == 220
    await client.close()
    plain = await SmtpClient.connect(HOST, peer.port, timeout=5, connect_timeout=5)
    await plain.close()
    assert peer.sources == [OURS, HOST]


async def test_an_address_this_computer_does_not_hold_fails_the_connection(peer: Listener) -> None:
    with pytest.raises(ConnectionLost, match=f"from {NOT_HERE}"):
        await SmtpClient.connect(HOST, peer.port, timeout=5, connect_timeout=5, local_address=NOT_HERE)
    with pytest.raises(ConnectionLost, match="from ::1"):  # the other family
        await SmtpClient.connect(HOST, peer.port, timeout=5, connect_timeout=5, local_address="::1")
    assert peer.sources == []


async def test_a_send_connector_leaves_from_its_source_ip_address(peer: Listener) -> None:
    resolver = NextHopResolver([HOST])  # smart hosts given as IPs: no query is made
    for source, expected in ((OURS, OURS), ("0.0.0.0", HOST)):
        conn = _connector(
            dns_routing_enabled=False, smart_hosts=(HOST,), port=peer.port, source_ip_address=source
        )
        [endpoint] = await endpoints(conn, "example.net", resolver)
        opener = SessionOpener(conn, "mbx1.example.test", TlsContexts(), lambda _e: None)
        client = await opener.open(endpoint)
        await client.close()
        assert peer.sources[-1] == expected
    conn = _connector(
        dns_routing_enabled=False, smart_hosts=(HOST,), port=peer.port, source_ip_address=NOT_HERE
    )
    [endpoint] = await endpoints(conn, "example.net", resolver)
    with pytest.raises(SessionFailed, match="4.4.1"):  # deferred, never sent from another address
        await SessionOpener(conn, "mbx1.example.test", TlsContexts(), lambda _e: None).open(endpoint)


@dataclass
class OneServer:
    """The directory as OrgLinks reads it: one Mailbox server, mbx2, on HOST."""

    port: int

    def server(self, name: str) -> Server | None:
        if name != "mbx2":
            return None
        return Server("mbx2", "mbx2.example.test", ("mailbox",), "Site", (HOST,))

    def servers(self) -> list[Server]:
        return [s for s in (self.server("mbx2"),) if s is not None]

    def receive_connectors(self, server: str) -> list[ReceiveConnector]:
        return [ReceiveConnector(server, f"Default {server}", TransportRole.HUB, (f"{HOST}:{self.port}",))]

    def database(self, name: str) -> None:
        return None


async def test_hops_to_our_servers_leave_from_our_own_address() -> None:
    resolver = NextHopResolver([HOST])
    mine = OrgLinks("mbx1", lambda: OneServer(2525), None, ("0.0.0.0", OURS, "::1"))  # type: ignore[arg-type]
    assert [(e.address, e.port, e.source) for e in await mine.mailbox_server("mbx2", resolver)] == [
        (HOST, 2525, OURS)
    ]
    wildcard = OrgLinks("mbx1", lambda: OneServer(2525), None, ("0.0.0.0",))  # type: ignore[arg-type]
    assert [e.source for e in await wildcard.mailbox_server("mbx2", resolver)] == [None]


async def test_the_http_proxy_transport_leaves_from_our_own_address(web: Listener) -> None:
    context = ssl.create_default_context()
    limits = httpx.Limits(max_connections=4)
    for listen, expected in (((OURS,), OURS), (("0.0.0.0",), HOST)):
        transport = SourcedTransport(listen, verify=context, limits=limits)
        async with httpx.AsyncClient(transport=transport) as client:
            answer = await client.get(f"http://{HOST}:{web.port}/owa/")
        assert answer.text == "ok"
        assert web.sources[-1] == expected


async def test_source_ip_address_is_stored_in_the_directory(db_url: str) -> None:
    """A connector parameter lives in the connector's JSON document: no migration, both engines."""
    directory = await Directory.open(db_url)
    try:
        made = await directory.new_send_connector(
            "Out", address_spaces=[("*", 1)], source_ip_address="2001:DB8::0005"
        )
        assert made.source_ip_address == "2001:db8::5"
        await directory.set_send_connector("Out", source_ip_address="127.0.0.7")
        assert (await directory.get_send_connector("Out")).source_ip_address == "127.0.0.7"
        with pytest.raises(PermanentError, match="SourceIPAddress"):
            await directory.set_send_connector("Out", source_ip_address="not-an-address")
        assert (await directory.get_send_connector("Out")).source_ip_address == "127.0.0.7"
    finally:
        await directory.close()
