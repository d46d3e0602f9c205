"""Header work at receipt: the Received trace field, and Message-ID/Date for submissions.

Only the header block is looked at (up to the first empty line), so a 30 MB body costs nothing.
RFC 5321 §4.4 (trace fields), RFC 5322 §3.6 (Message-ID, Date), RFC 3848 (WITH protocol types).
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from courriel.core.address import AddressError, parse_domain
from courriel.core.ids import new_message_id

_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)
_COMMENT_UNSAFE = re.compile(r"[()\\\x00-\x1f\x7f]")  # RFC 5322 §3.2.2: not ctext


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    header_end: int  # offset of the empty line ending the header (or len(data))
    message_id: str | None
    subject: str | None
    has_date: bool
    received_count: int
    header_size: int


def _unfold(value: bytes) -> str:
    return re.sub(rb"\r?\n[ \t]+", b" ", value).decode("utf-8", "replace").strip()


def header_facts(data: bytes) -> HeaderFacts:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = len(data) if not data.startswith(b"\r\n") else 0
    else:
        end += 2
    header = data[:end]
    message_id = subject = None
    has_date = False
    received = 0
    matches = list(_FIELD.finditer(header))
    for i, m in enumerate(matches):
        name = m.group(1).lower()
        if name not in (b"message-id", b"subject", b"date", b"received"):
            continue
        stop = matches[i + 1].start() if i + 1 < len(matches) else len(header)
        value = header[m.end() : stop]
        if name == b"received":
            received += 1
        elif name == b"date":
            has_date = True
        elif name == b"message-id" and message_id is None:
            message_id = _unfold(value)
        elif name == b"subject" and subject is None:
            subject = _unfold(value)[:256]
    return HeaderFacts(end, message_id, subject, has_date, received, len(header))


def with_protocol(*, esmtp: bool, tls: bool, auth: bool, utf8: bool) -> str:
    """RFC 3848 / RFC 6531 §4.3: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTPSA …"""
    if not esmtp:
        return "SMTP"
    base = "UTF8SMTP" if utf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if auth else "")


def received_header(
    *,
    helo: str | None,
    client_ip: str,
    by: str,
    protocol: str,
    queue_id: str,
    recipient: str | None,
    tls_version: str | None = None,
) -> bytes:
    """One Received field (RFC 5321 §4.4); `for` only when there is a single recipient (privacy)."""
    literal = f"[{client_ip}]" if ":" not in client_ip else f"[IPv6:{client_ip}]"
    if helo is None or _is_domain(helo):
        from_part = f"from {helo or 'unknown'} ({literal})"
    else:
        # RFC 5321 §4.4: From-domain is a domain or an address literal. Any other EHLO text goes
        # in the comment, without what would end it, so that a ";" cannot pass for the date's.
        from_part = f"from {literal} ({literal} helo={_COMMENT_UNSAFE.sub('', helo)})"
    tls_part = f" ({tls_version})" if tls_version else ""
    for_part = f"\r\n\tfor <{recipient}>" if recipient else ""
    date = _now()
    text = f"Received: {from_part}\r\n\tby {by} (Courriel) with {protocol}{tls_part} id {queue_id}{for_part};\r\n\t{date}\r\n"
    return text.encode("utf-8")


class _Addressed(Protocol):
    @property
    def address(self) -> str: ...


class ReceivedTransaction(Protocol):
    """An SMTP transaction as a receive connector took it: what its Received field and the header
    firewall (transport/firewall.py) read. transport/service.py's Submission and the front end's
    Transaction (clientaccess/smtp_relay.py) both are one."""

    @property
    def data(self) -> bytes: ...
    @property
    def recipients(self) -> Sequence[_Addressed]: ...
    @property
    def client_ip(self) -> str: ...
    @property
    def helo(self) -> str | None: ...
    @property
    def auth_user(self) -> str | None: ...
    @property
    def auth_server(self) -> str | None: ...
    @property
    def tls_version(self) -> str | None: ...
    @property
    def esmtp(self) -> bool: ...
    @property
    def smtputf8(self) -> bool: ...


def trace(tx: ReceivedTransaction, *, by: str, queue_id: str) -> bytes:
    """The Received field this hop (`by`) adds to the transaction it took, under `queue_id`."""
    return received_header(
        helo=tx.helo,
        client_ip=tx.client_ip,
        by=by,
        protocol=with_protocol(
            esmtp=tx.esmtp,
            tls=tx.tls_version is not None,
            auth=tx.auth_user is not None or tx.auth_server is not None,
            utf8=tx.smtputf8,
        ),
        queue_id=queue_id,
        recipient=tx.recipients[0].address if len(tx.recipients) == 1 else None,
        tls_version=tx.tls_version,
    )


def _now() -> str:
    """The date-time in UTC as "+0000": RFC 5322 §3.3 gives "-0000" the meaning "zone unknown"."""
    return email.utils.format_datetime(datetime.now(UTC))


def _is_domain(name: str) -> bool:
    try:
        parse_domain(name)
    except AddressError:
        return False
    return True


def submission_headers(facts: HeaderFacts, fqdn: str) -> tuple[bytes, str]:
    """Message-ID and Date a submitted message lacks (RFC 6409 §8.2, §8.3); returns (fields, message-id)."""
    added = b""
    message_id = facts.message_id
    if not message_id:
        message_id = new_message_id(fqdn)
        added += f"Message-ID: {message_id}\r\n".encode()
    if not facts.has_date:
        added += f"Date: {_now()}\r\n".encode()
    return added, message_id
