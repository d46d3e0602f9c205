"""The test DNS server itself (tests/dnsserver.py): what it answers, in process and as a CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from courriel.dns import NextHop, NextHopResolver
from courriel.dns.errors import NoSuchDomain
from tests.dnsserver import DnsServer

ROOT = Path(__file__).resolve().parents[3]
ZONE = {
    "example.net": {"SOA": "ns.example.net. hostmaster.example.net. 7 3600 600 86400 42", "A": "127.0.0.70"},
    "www.example.net": {"CNAME": "example.net."},
    "dangling.example.net": {"CNAME": "missing.example.net."},
    "loop1.example.net": {"CNAME": "loop2.example.net."},
    "loop2.example.net": {"CNAME": "loop1.example.net."},
    "host.deep.example.net": {"A": "127.0.0.71"},
}


async def ask(server: DnsServer, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return await dns.asyncquery.tcp(query, server.host, port=server.port, timeout=2)
    return await dns.asyncquery.udp(query, server.host, port=server.port, timeout=2)


async def test_answer_with_cname_chain(serve):
    server = await serve(ZONE)
    response = await ask(server, "WWW.example.net")
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert response.resolve_chaining().answer[0].address == "127.0.0.70"


async def test_nodata_carries_the_zone_soa(serve):
    server = await serve(ZONE)
    response = await ask(server, "www.example.net", "MX")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.resolve_chaining().answer is None
    (soa,) = response.authority
    assert soa.name.to_text() == "example.net." and soa[0].minimum == 42 and soa[0].serial == 7


async def test_nxdomain_and_empty_non_terminal(serve):
    server = await serve(ZONE, negative_ttl=17)
    missing = await ask(server, "missing.example.net")
    assert missing.rcode() == dns.rcode.NXDOMAIN and missing.authority[0][0].minimum == 42
    ent = await ask(server, "deep.example.net")
    assert ent.rcode() == dns.rcode.NOERROR and not ent.answer
    elsewhere = await ask(server, "a.b.example.org")
    assert elsewhere.rcode() == dns.rcode.NXDOMAIN
    assert elsewhere.authority[0].name.to_text() == "example.org." and elsewhere.authority[0].ttl == 17


async def test_dangling_cname_is_nxdomain_and_loop_is_servfail(serve):
    server = await serve(ZONE)
    dangling = await ask(server, "dangling.example.net")
    assert dangling.rcode() == dns.rcode.NXDOMAIN and dangling.answer[0].rdtype == dns.rdatatype.CNAME
    assert (await ask(server, "loop1.example.net")).rcode() == dns.rcode.SERVFAIL


async def test_truncate_behaviour_sets_tc_on_udp_only(serve):
    server = await serve({"t.example": {"A": "127.0.0.72", "behaviour": "truncate"}})
    query = dns.message.make_query("t.example", "A")
    response = await dns.asyncquery.udp(
        query, server.host, port=server.port, timeout=2, raise_on_truncation=False
    )
    assert response.flags & dns.flags.TC and not response.answer
    assert (await ask(server, "t.example", tcp=True)).answer[0][0].address == "127.0.0.72"
    assert [q.transport for q in server.log] == ["udp", "tcp"]


async def test_timeout_behaviour_never_answers(serve):
    server = await serve({"slow.example": {"behaviour": {"A": "timeout"}, "AAAA": "::1"}})
    with pytest.raises(dns.exception.Timeout):
        await dns.asyncquery.udp(
            dns.message.make_query("slow.example", "A"), server.host, port=server.port, timeout=0.2
        )
    assert (await ask(server, "slow.example", "AAAA")).answer[0][0].address == "::1"


async def test_several_queries_on_one_tcp_connection(serve):
    server = await serve(ZONE)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    for name in ("example.net", "host.deep.example.net"):
        wire = dns.message.make_query(name, "A").to_wire()
        writer.write(len(wire).to_bytes(2, "big") + wire)
    replies = []
    for _ in range(2):
        length = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 2), "big")
        replies.append(dns.message.from_wire(await reader.readexactly(length)))
    writer.close()
    assert [r.answer[0][0].address for r in replies] == ["127.0.0.70", "127.0.0.71"]


def test_garbage_gets_formerr_and_a_bad_behaviour_is_refused():
    server = DnsServer({"x.example": {"behaviour": "sometimes"}}, "127.0.0.1")
    reply = server.handle(b"\x12\x34" + bytes(10) + b"\xff", "udp")
    assert reply is not None and reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR
    assert server.handle(b"\x00", "udp") is None
    with pytest.raises(ValueError, match="unknown behaviour"):
        server.handle(dns.message.make_query("x.example", "A").to_wire(), "udp")


async def test_records_change_while_running_on_another_loopback_address(serve):
    records: dict = {}
    server = await serve(records, host="127.0.0.53")
    assert (await ask(server, "new.example")).rcode() == dns.rcode.NXDOMAIN
    records["new.example"] = {"A": "127.0.0.73"}
    assert (await ask(server, "new.example")).answer[0][0].address == "127.0.0.73"


async def test_command_line_server(tmp_path):
    zone = tmp_path / "zone.json"
    zone.write_text(
        json.dumps({"example.net": {"MX": [[10, "mx.example.net."]]}, "mx.example.net": {"A": "127.0.0.74"}})
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.dnsserver",
        "--listen",
        "127.0.0.1:0",
        "--zone",
        str(zone),
        "--log-queries",
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        assert banner.startswith("listening on 127.0.0.1:")
        nameserver = banner.split()[-1]
        hops = await NextHopResolver([nameserver], timeout=1).mx_hosts("example.net")
        assert [(h.host, h.addresses) for h in hops] == [("mx.example.net", ("127.0.0.74",))]
        assert (await asyncio.wait_for(process.stdout.readline(), 5)).decode() == "query udp example.net MX\n"

        zone.write_text(json.dumps({"example.net": {"A": "127.0.0.75"}}))
        process.send_signal(signal.SIGHUP)
        for _ in range(50):  # the reload lands between two datagrams; poll with a fresh cache
            try:
                hops = await NextHopResolver([nameserver], timeout=1).mx_hosts("example.net")
            except NoSuchDomain:  # the old zone's MX, then the new zone's answer for its host
                await asyncio.sleep(0.05)
                continue
            if hops[0].addresses == ("127.0.0.75",):
                break
            await asyncio.sleep(0.05)
        assert hops == [NextHop("example.net", 0, ("127.0.0.75",))]
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0
