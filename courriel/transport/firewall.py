"""The header firewall: the organization's internal header fields travel only between its servers.

A message entering the organization (from anything but a server that proved itself with an
organization certificate) loses every `X-Courriel-Organization-*` field it brought — a sender
outside cannot claim to be "Internal" — and gets ours: how it was authenticated (AuthAs), the
server that took it in (AuthSource), its first queue id (Network-Message-Id, which follows it
from server to server in the tracking logs) and when it arrived. Servers of the organization pass
them on untouched — unless they carry none, as when a Client Access front end proxies a message
it received from the Internet (it strips them, being stateless, and this server stamps them); mail
leaving the organization (a send connector, the outbound proxy) is
stripped of them again. The role of Exchange's X-MS-Exchange-Organization-* fields and header
firewall. Only the header block is read; a body is never touched.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

from courriel.transport.receive.headers import ReceivedTransaction, header_facts

PREFIX = b"x-courriel-organization-"
AUTH_AS = "X-Courriel-Organization-AuthAs"
AUTH_SOURCE = "X-Courriel-Organization-AuthSource"
NETWORK_MESSAGE_ID = "X-Courriel-Organization-Network-Message-Id"
ARRIVAL = "X-Courriel-Organization-OriginalArrivalTime"


def strip_internal(data: bytes) -> bytes:
    """The message without the organization's internal header fields (folded lines included)."""
    header = _header(data)
    end = len(header)
    if PREFIX not in header.lower():
        return data
    out = bytearray()
    dropping = False
    for line in header.splitlines(keepends=True):
        if line[:1] not in (b" ", b"\t"):  # a new field begins; a folded line belongs to the last one
            dropping = line.lower().startswith(PREFIX)
        if not dropping:
            out += line
    return bytes(out) + data[end:]


def _header(data: bytes) -> bytes:
    return data[: header_facts(data).header_end]


def admit(data: bytes, *, from_server: bool, auth_as: str, source: str, network_message_id: str) -> bytes:
    """The message as this server keeps it: as it is from a server of the organization that
    stamped it, else with its own internal fields out and ours in."""
    if from_server and b"\n" + AUTH_AS.lower().encode() + b":" in b"\n" + _header(data).lower():
        return data
    fields = (
        f"{AUTH_AS}: {auth_as}\r\n"
        f"{AUTH_SOURCE}: {source}\r\n"
        f"{NETWORK_MESSAGE_ID}: {network_message_id}\r\n"
        f"{ARRIVAL}: {email.utils.format_datetime(datetime.now(UTC))}\r\n"
    )
    return fields.encode("ascii", "replace") + strip_internal(data)


def admit_transaction(tx: ReceivedTransaction, *, source: str, network_message_id: str) -> bytes:
    """`admit` for a transaction as a receive connector took it: from a server of the organization
    when one proved itself (mutual TLS), "Internal" when a user authenticated."""
    return admit(
        tx.data,
        from_server=tx.auth_server is not None,
        auth_as="Internal" if tx.auth_user else "Anonymous",
        source=source,
        network_message_id=network_message_id,
    )
