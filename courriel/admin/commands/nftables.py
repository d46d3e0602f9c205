"""`courriel ports --organization --format nftables`: the flow table as a firewall ruleset for `nft -f`.

One table, `inet courriel`, with one input chain (policy accept, so that the host's own traffic —
SSH, the directory's PostgreSQL — stays the business of its other rules). Per server: one accept
rule per flow that reaches it (its addresses and bound port, from the flow's sources), then a drop
of the organization's service ports (offset applied) that no flow allowed. Loading the file
replaces that table and nothing else. IPv4 and IPv6 are matched separately (`ip`/`ip6`); a host
name among the addresses is left for nft to resolve (IPv4) when it loads the file.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from courriel.core import ports
from courriel.core.errors import PermanentError
from courriel.org.flows import Endpoint, Flow
from courriel.org.ipranges import parse_ip_range
from courriel.org.model import Server

TABLE = "courriel"
MAX_PORT = 65535
COMMENT_BYTES = 127  # nft refuses comments of 128 bytes or more
_FAMILIES = ((4, "ip"), (6, "ip6"))


def _element(text: str) -> tuple[int, str]:
    """(IP version, nft element) for an address, `first-last` range or CIDR block; 4 for a host name."""
    if "/" in text:
        net = ipaddress.ip_network(text, strict=False)
        return net.version, str(net)
    try:
        found = parse_ip_range(text)
    except PermanentError:
        return 4, text  # a host name: nft resolves it when the ruleset is loaded
    kind = ipaddress.IPv4Address if found.version == 4 else ipaddress.IPv6Address
    first, last = kind(found.first), kind(found.last)
    return found.version, str(first) if first == last else f"{first}-{last}"


def _by_family(endpoint: Endpoint) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {4: [], 6: []}
    for text in endpoint.addresses:
        version, element = _element(text)
        if element not in out[version]:
            out[version].append(element)
    return out


def _set(elements: Sequence[str]) -> str:
    return elements[0] if len(elements) == 1 else "{ " + ", ".join(elements) + " }"


def address_matches(source: Endpoint, destination: Endpoint) -> list[str]:
    """The address part of a rule, once per IP family both ends can meet in ("" when both are any)."""
    if not source.addresses and not destination.addresses:
        return [""]
    src, dst = _by_family(source), _by_family(destination)
    out = []
    for version, keyword in _FAMILIES:
        if (source.addresses and not src[version]) or (destination.addresses and not dst[version]):
            continue
        parts = [f"{keyword} saddr {_set(src[version])}"] if src[version] else []
        parts += [f"{keyword} daddr {_set(dst[version])}"] if dst[version] else []
        out.append(" ".join(parts) + " ")
    return out


def comment(text: str) -> str:
    """A quoted nft comment: no double quotes inside, under nft's length limit, cut on a character."""
    raw = text.replace('"', "'").replace("\\", "/").encode()[:COMMENT_BYTES]
    return '"' + raw.decode(errors="ignore") + '"'


def _flow_comment(flow: Flow) -> str:
    via = flow.connector or flow.service or ""
    return comment(f"{flow.source.name} -> {flow.destination.name}: {via} ({flow.purpose})")


def service_ports(server: Server, flows: Iterable[Flow]) -> list[int]:
    """Every port the organization's services may use on this server (`flows`: those to it), with
    its port_offset."""
    seed = {s.port for s in ports.SERVICES} | {ports.COLOCATED_TRANSPORT_PORT}
    seed |= {f.port for f in flows}
    bound = (ports.offset_port(p, server.port_offset) for p in seed)
    return sorted(p for p in bound if p <= MAX_PORT)  # a large offset pushes EdgeSync's 50636 off the range


def server_rules(server: Server, flows: Sequence[Flow]) -> list[str]:
    """Accept each flow to this server, then drop its other service ports."""
    mine = [f for f in flows if f.destination.server and f.destination.name == server.name]
    lines = [f"# {server.name} ({', '.join(server.addresses) or 'no registered address'})"]
    if not server.addresses:
        lines.append(f"# {server.name} has no registered address: load these rules on {server.name} only")
    seen: set[str] = set()
    for flow in mine:
        if flow.bound_port > MAX_PORT:
            lines.append(f"# {flow.connector or flow.service}: port {flow.bound_port} is beyond {MAX_PORT}")
            continue
        matches = address_matches(flow.source, flow.destination)
        if not matches:
            lines.append(f"# no IP family common to {flow.source} and {flow.destination}: nothing to allow")
        for match in matches:
            rule = f"{match}{flow.protocol} dport {flow.bound_port} accept"
            if rule not in seen:
                seen.add(rule)
                lines.append(f"{rule} comment {_flow_comment(flow)}")
    closed = _set([str(p) for p in service_ports(server, mine)])
    for match in address_matches(Endpoint("any"), Endpoint(server.name, server.addresses)):
        lines.append(
            f"{match}tcp dport {closed} drop comment {comment(f'{server.name}: service ports no flow allows')}"
        )
    return lines


def ruleset(flows: Sequence[Flow], servers: Sequence[Server], heading: str) -> str:
    """The whole `nft -f` file for these servers (one block of rules each)."""
    body: list[str] = []
    for server in servers:
        body += ["", *server_rules(server, flows)]
    chain = "\n".join(f"\t\t{line}" if line else "" for line in body)
    return (
        "#!/usr/sbin/nft -f\n"
        f"# {heading}\n"
        f"# Load with `nft -f FILE`: it replaces the table inet {TABLE} and nothing else.\n\n"
        f"table inet {TABLE}\n"
        f"delete table inet {TABLE}\n\n"
        f"table inet {TABLE} {{\n"
        "\tchain input {\n"
        "\t\ttype filter hook input priority 0; policy accept;\n"
        f"{chain}\n"
        "\t}\n"
        "}\n"
    )
