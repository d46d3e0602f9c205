"""A real DNS server for tests: answers UDP and TCP on loopback from a Python dict.

Tests point Courriel's resolver (or a whole Courriel process) at it instead of the Internet. It
answers like a recursive resolver that knows every name in the dict: CNAME chains are followed
inside one answer, names absent from the dict get NXDOMAIN, names present without the asked type
get NOERROR/NODATA with an SOA in the authority section (RFC 2308 §2), UDP answers too big for
the client's buffer are truncated (TC bit, RFC 1035 §4.2.1) so the client retries over TCP.

Records, keyed by name (trailing dot optional, Unicode names are encoded to A-labels)::

    {"example.net": {"MX": [(10, "mx1.example.net."), (20, "mx2.example.net.")], "ttl": 300},
     "mx1.example.net": {"A": ["127.0.0.21"], "AAAA": ["::1"]},
     "alias.example.net": {"CNAME": "mx1.example.net."},
     "example.org": {"SOA": "ns. hostmaster. 1 3600 600 86400 30"},
     "broken.example.net": {"behaviour": "servfail"},            # or {"AAAA": "servfail"}
    }

Each record type maps to one value or a list; a value is master-file text or a tuple of its
fields. "ttl" applies to every record of the name. "behaviour" is one of `servfail`, `refused`,
`nxdomain`, `timeout` (never answer) or `truncate` (TC on UDP, full answer on TCP), for the whole
name or per type. Without an SOA above a name, a synthetic one sits at its last two labels, with
TTL and minimum `negative_ttl`. `server.records` may be changed while the server runs.

In-process: `server = await start_dns_server(records)`; then `server.address`, `server.queries`,
`await server.stop()`. Out of process (for a Courriel server under test)::

    python -m tests.dnsserver --listen 127.0.0.53:5353 --zone zone.json [--log-queries]

prints `listening on ADDRESS:PORT` once bound, reloads the zone on SIGHUP, stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Records = dict[str, dict[str, Any]]
BEHAVIOURS = frozenset({"servfail", "refused", "nxdomain", "timeout", "truncate"})
DEFAULT_TTL = 300
MAX_CHAIN = 8
CLASSIC_UDP_SIZE = 512  # RFC 1035 §4.2.1, when the query carries no EDNS payload size


@dataclass(frozen=True)
class Query:
    name: str  # A-labels, lower case, no final dot
    type: str  # "MX", "A" …
    transport: str  # "udp" or "tcp"


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text, idna_codec=dns.name.IDNA_2008_Practical).canonicalize()


def _texts(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [" ".join(map(str, v)) if isinstance(v, tuple | list) else str(v) for v in values]


@dataclass
class DnsServer:
    records: Records
    host: str
    port: int = 0
    negative_ttl: int = 60
    on_query: Callable[[Query], None] | None = None  # called for each question, after logging
    log: list[Query] = field(default_factory=list, init=False)
    _udp: asyncio.DatagramTransport | None = field(default=None, init=False)
    _tcp: asyncio.Server | None = field(default=None, init=False)
    _connections: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    @property
    def queries(self) -> list[tuple[str, str]]:
        """(name, type) of every question asked, in order, over either transport."""
        return [(q.name, q.type) for q in self.log]

    @property
    def address(self) -> str:
        """`host:port` as a nameserver setting (`[::1]:port` for IPv6)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    # -- answering (no I/O) -------------------------------------------------------------------

    def handle(self, wire: bytes, transport: str) -> bytes | None:
        """The reply to one query in wire format, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            # FORMERR with the query's id, if there is a header to take it from (RFC 1035 §4.1.1).
            return wire[:2] + b"\x80\x01" + bytes(8) if len(wire) >= 12 else None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        asked = Query(question.name.to_text(omit_final_dot=True).lower(), question.rdtype.name, transport)
        self.log.append(asked)
        if self.on_query is not None:
            self.on_query(asked)
        if not self._answer(response, question.name.canonicalize(), question.rdtype, transport):
            return None
        limit = (
            65535 if transport == "tcp" else max(query.payload if query.edns >= 0 else 0, CLASSIC_UDP_SIZE)
        )
        try:
            return response.to_wire(max_size=limit, want_shuffle=False)  # keep the dict order
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()

    def _answer(
        self,
        response: dns.message.Message,
        qname: dns.name.Name,
        qtype: dns.rdatatype.RdataType,
        transport: str,
    ) -> bool:
        """Fill `response`; False means "do not answer"."""
        zone = {_name(key): entry for key, entry in self.records.items()}
        name = qname
        for _ in range(MAX_CHAIN):
            entry = zone.get(name)
            behaviour = self._behaviour(entry, qtype)
            if behaviour == "timeout":
                return False
            if behaviour in ("servfail", "refused"):
                response.answer.clear()
                response.set_rcode(dns.rcode.SERVFAIL if behaviour == "servfail" else dns.rcode.REFUSED)
                return True
            if behaviour == "truncate" and transport == "udp":
                response.answer.clear()
                response.flags |= dns.flags.TC
                return True
            if entry is None or behaviour == "nxdomain":
                # An empty non-terminal exists (RFC 8020): it has names below it.
                exists = behaviour != "nxdomain" and any(key.is_subdomain(name) for key in zone)
                if not exists:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                self._add_soa(response, zone, name)
                return True
            ttl = int(entry.get("ttl", DEFAULT_TTL))
            if "CNAME" in entry and qtype != dns.rdatatype.CNAME:
                rrset = self._rrset(name, ttl, dns.rdatatype.CNAME, entry["CNAME"])
                response.answer.append(rrset)
                name = next(iter(rrset)).target.canonicalize()
                continue
            if qtype.name not in entry:
                self._add_soa(response, zone, name)
                return True
            response.answer.append(self._rrset(name, ttl, qtype, entry[qtype.name]))
            return True
        response.answer.clear()
        response.set_rcode(dns.rcode.SERVFAIL)  # a CNAME loop, as a resolver reports it
        return True

    @staticmethod
    def _behaviour(entry: dict[str, Any] | None, qtype: dns.rdatatype.RdataType) -> str | None:
        behaviour = (entry or {}).get("behaviour")
        if isinstance(behaviour, dict):
            behaviour = behaviour.get(qtype.name)
        if behaviour is not None and behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; expected one of {sorted(BEHAVIOURS)}")
        return behaviour

    @staticmethod
    def _rrset(name: dns.name.Name, ttl: int, rdtype: dns.rdatatype.RdataType, value: Any) -> dns.rrset.RRset:
        rdatas = [
            dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=dns.name.root, relativize=False)
            for text in _texts(value)
        ]
        return dns.rrset.from_rdata_list(name, ttl, rdatas)

    def _add_soa(
        self, response: dns.message.Message, zone: dict[dns.name.Name, Any], name: dns.name.Name
    ) -> None:
        owner = name
        while owner != dns.name.root:
            entry = zone.get(owner)
            if entry is not None and "SOA" in entry:
                ttl = int(entry.get("ttl", DEFAULT_TTL))
                response.authority.append(self._rrset(owner, ttl, dns.rdatatype.SOA, entry["SOA"]))
                return
            owner = owner.parent()
        apex = name.split(min(3, len(name)))[1]  # the last two labels and the root
        soa = f"ns.invalid. hostmaster.invalid. 1 3600 600 86400 {self.negative_ttl}"
        response.authority.append(self._rrset(apex, self.negative_ttl, dns.rdatatype.SOA, soa))

    # -- sockets ------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # UDP and TCP must share the port; with port 0 take the UDP one and retry on a clash.
        for _ in range(20):
            udp, _protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, self.port)
            )
            port = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError:
                udp.close()
                if self.port:
                    raise
                continue
            self._udp, self.port = udp, port
            return
        raise OSError(f"no free UDP+TCP port pair on {self.host}")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for task in self._connections:
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._tcp.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:  # RFC 7766 §6.2.1: several queries per connection
                length = int.from_bytes(await reader.readexactly(2), "big")
                reply = self.handle(await reader.readexactly(length), "tcp")
                if reply is not None:
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self.server.handle(data, "udp")
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def start_dns_server(
    records: Records, host: str = "127.0.0.1", port: int = 0, *, negative_ttl: int = 60
) -> DnsServer:
    """A running server on `host:port` (0: an ephemeral port, read it from `.port`)."""
    server = DnsServer(records, host, port, negative_ttl=negative_ttl)
    await server.start()
    return server


def _parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


async def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.dnsserver", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="ADDRESS:PORT or [IPv6]:PORT (0: ephemeral)")
    parser.add_argument("--zone", type=Path, help="JSON file with the records (reloaded on SIGHUP)")
    parser.add_argument("--log-queries", action="store_true", help="print each question to stdout")
    args = parser.parse_args(argv)

    def load() -> Records:
        return json.loads(args.zone.read_text()) if args.zone else {}

    def print_query(query: Query) -> None:
        print(f"query {query.transport} {query.name} {query.type}", flush=True)

    def reload() -> None:
        server.records = load()

    host, port = _parse_listen(args.listen)
    server = DnsServer(load(), host, port, on_query=print_query if args.log_queries else None)
    await server.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    loop.add_signal_handler(signal.SIGINT, stopped.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    print(f"listening on {server.address}", flush=True)
    await stopped.wait()
    await server.stop()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(sys.argv[1:]))
