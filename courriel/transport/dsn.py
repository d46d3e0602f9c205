"""Delivery status notifications: who gets one, and the RFC 3464 message itself.

The bounce step of DESIGN.md §4 (Postfix's `bounce` daemon, Exchange's NDR generator). Pure:
values in, bytes out, no I/O. `transport/reports.py` decides when to call it and queues the result.

Rules followed:
- RFC 3461 §4.1 NOTIFY: FAILURE, DELAY, SUCCESS or NEVER; absent means FAILURE,DELAY (our
  choice, as Postfix and Exchange make it). NEVER suppresses every notice.
- RFC 3461 §6.2 / RFC 5321 §6.1: never notify the null sender; a DSN's own envelope sender is
  `<>`, so a DSN that fails produces nothing (no bounce of a bounce, no loop).
- RFC 3462 / RFC 6522 multipart/report; report-type=delivery-status: a readable part first
  (English), then message/delivery-status (RFC 3464 §2.2 per-message and §2.3 per-recipient
  fields), then the returned content: the whole message (RET=FULL or absent, failures only) or
  its header (RET=HDRS, and every delay/success notice: RFC 3461 §4.3).
- RFC 6533: when an address is not ASCII the report becomes message/global-delivery-status and
  the returned content message/global or message/global-headers (RFC 6532 §3.7).
- RFC 3834 §5: `Auto-Submitted: auto-replied`.
"""

from __future__ import annotations

import email.quoprimime
import email.utils
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header

from courriel.transport.receive.headers import header_facts

ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")  # RFC 3464 §2.3.3
_NOTIFY_FOR = {
    "failed": "FAILURE",
    "delayed": "DELAY",
    "delivered": "SUCCESS",
    "relayed": "SUCCESS",
    "expanded": "SUCCESS",
}
DEFAULT_NOTIFY = frozenset({"FAILURE", "DELAY"})
# Postfix returns 50 kB (bounce_size_limit); Exchange returns the message whole. A bounce carrying
# a large attachment back is rarely wanted, so beyond this we return the header only.
MAX_RETURNED_CONTENT = 10 * 1024 * 1024
MAX_DIAGNOSTIC = 900  # keeps a Diagnostic-Code line under RFC 5322's 998-octet limit

_REPLY = re.compile(r"^([245])\d\d(?:[ -]([245])\.(\d{1,3})\.(\d{1,3}))?")
_SUBJECTS = {
    "failed": "Undeliverable",
    "delayed": "Delivery delayed",
    "delivered": "Delivered",
    "relayed": "Relayed",
    "expanded": "Expanded",
}
_INTRO = {
    "failed": "Your message couldn't be delivered to these recipients:",
    "delayed": "Your message hasn't been delivered to these recipients yet. The mail system keeps trying; "
    "you don't need to send it again:",
    "delivered": "Your message was delivered to these recipients:",
    "relayed": "Your message was passed on to these recipients' mail system, which does not report "
    "delivery; no further notice will follow:",
    "expanded": "Your message reached these distribution groups and was sent on to their members:",
}


def notify_values(notify: str | None) -> frozenset[str]:
    """The NOTIFY keywords of a recipient, defaults applied (RFC 3461 §4.1)."""
    if not notify:
        return DEFAULT_NOTIFY
    return frozenset(v.strip().upper() for v in notify.split(",") if v.strip())


def wants_notice(sender: str, notify: str | None, action: str) -> bool:
    """Does this recipient's sender get a DSN for `action`?"""
    if not sender:  # RFC 3461 §6.2: never to the null reverse-path
        return False
    values = notify_values(notify)
    return "NEVER" not in values and _NOTIFY_FOR[action] in values


def status_of(error: str | None, action: str) -> str:
    """The RFC 3463 status code for the Status field, from an SMTP-style reply when there is one."""
    match = _REPLY.match(error or "")
    if match and match.group(2):
        status = f"{match.group(2)}.{match.group(3)}.{match.group(4)}"
        if action in ("failed", "delayed") and status[0] in "45":
            return status  # an expiry NDR keeps 4.4.7: transient cause, final outcome
        if action not in ("failed", "delayed") and status[0] == "2":
            return status
    if action == "failed":
        return "5.0.0" if not match or match.group(1) != "4" else "4.0.0"
    if action == "delayed":
        return "4.0.0"
    return "2.0.0"


@dataclass(frozen=True, slots=True)
class RecipientNotice:
    """One recipient's lines in a DSN (RFC 3464 §2.3)."""

    final_recipient: str
    action: str
    error: str | None = None  # the SMTP-style reply that decided it, "550 5.1.1 …"
    original_recipient: str | None = None  # the ORCPT parameter as received, "type;address"
    remote_mta: str | None = None
    last_attempt: float | None = None
    will_retry_until: float | None = None  # for "delayed"

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown DSN action {self.action!r}")


@dataclass(frozen=True, slots=True)
class Notice:
    """Everything a DSN says about one message (RFC 3464 §2.2)."""

    reporting_mta: str  # our FQDN
    to: str  # the original envelope sender: the DSN's only recipient
    arrival: float
    original: bytes  # the message as we queued it
    recipients: Sequence[RecipientNotice]
    envid: str | None = None  # ENVID, xtext-decoded
    ret: str | None = None  # RET: FULL or HDRS
    postmaster: str = ""  # From address; postmaster@reporting_mta when empty


def _date(ts: float) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(ts, UTC))


def _ascii(text: str) -> bool:
    return text.isascii()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _address_field(address: str) -> str:
    """`rfc822;addr`, or RFC 6533's `utf-8;addr` for an internationalized address."""
    return f"rfc822;{address}" if _ascii(address) else f"utf-8;{address}"


def _header(name: str, value: str) -> str:
    if _ascii(value):
        return f"{name}: {value}"
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")  # RFC 2047
    return f"{name}: {encoded}"


def _split(original: bytes) -> tuple[bytes, bytes]:
    end = original.find(b"\r\n\r\n")
    if end < 0:
        return original if original.endswith(b"\r\n") else original + b"\r\n", b""
    return original[: end + 2], original[end + 4 :]


def _readable(notice: Notice, subject: str | None) -> str:
    lines = [f"This is the mail system at {notice.reporting_mta}.", ""]
    if subject:
        lines += [f"Subject of your message: {subject}", ""]
    for action in ACTIONS:
        group = [r for r in notice.recipients if r.action == action]
        if not group:
            continue
        lines += [_INTRO[action], ""]
        for rcpt in group:
            lines.append(f"    {rcpt.final_recipient}")
            if rcpt.error and action in ("failed", "delayed"):
                lines.append(f"    Reason: {_one_line(rcpt.error)[:MAX_DIAGNOSTIC]}")
            if rcpt.remote_mta:
                lines.append(f"    Server: {rcpt.remote_mta}")
            if rcpt.will_retry_until:
                lines.append(f"    Trying until: {_date(rcpt.will_retry_until)}")
            lines.append("")
    if any(r.action == "failed" for r in notice.recipients):
        lines += [
            "Check the addresses for typing mistakes. If the reason above says the receiving",
            "system refused the message, its administrator can tell you more.",
            "",
        ]
    return "\r\n".join(lines)


def _status_fields(notice: Notice) -> str:
    """The message/delivery-status body: one per-message block, then one block per recipient."""
    head = [f"Reporting-MTA: dns; {notice.reporting_mta}"]
    if notice.envid:
        head.append(f"Original-Envelope-Id: {_one_line(notice.envid)}")  # RFC 3464 §2.2.1
    head.append(f"Arrival-Date: {_date(notice.arrival)}")
    blocks = ["\r\n".join(head)]
    for rcpt in notice.recipients:
        lines = []
        if rcpt.original_recipient:  # RFC 3464 §2.3.1: only when ORCPT was given
            kind, _, value = rcpt.original_recipient.partition(";")
            lines.append(f"Original-Recipient: {kind.strip() or 'rfc822'};{value.strip()}")
        lines.append(f"Final-Recipient: {_address_field(rcpt.final_recipient)}")
        lines.append(f"Action: {rcpt.action}")
        lines.append(f"Status: {status_of(rcpt.error, rcpt.action)}")
        if rcpt.remote_mta:
            lines.append(f"Remote-MTA: dns; {rcpt.remote_mta}")
        if rcpt.error and _REPLY.match(rcpt.error):
            lines.append(f"Diagnostic-Code: smtp; {_one_line(rcpt.error)[:MAX_DIAGNOSTIC]}")
        if rcpt.last_attempt:
            lines.append(f"Last-Attempt-Date: {_date(rcpt.last_attempt)}")
        if rcpt.will_retry_until and rcpt.action == "delayed":
            lines.append(f"Will-Retry-Until: {_date(rcpt.will_retry_until)}")
        blocks.append("\r\n".join(lines))
    return "\r\n\r\n".join(blocks) + "\r\n"


def _boundary(*contents: bytes) -> str:
    while True:
        boundary = f"=_courriel_{os.urandom(12).hex()}"
        if not any(boundary.encode() in c for c in contents):
            return boundary


def _part(content_type: str, body: bytes, extra: str = "") -> bytes:
    cte = "7bit" if body.isascii() else "8bit"  # RFC 2046 §5.2.1: message/* only 7bit/8bit/binary
    return f"Content-Type: {content_type}\r\n{extra}Content-Transfer-Encoding: {cte}\r\n\r\n".encode() + body


def build_dsn(notice: Notice, *, now: float, message_id: str) -> bytes:
    """The DSN message, CRLF throughout, ready to be queued with the null sender."""
    if not notice.recipients:
        raise ValueError("a DSN reports on at least one recipient")
    facts = header_facts(notice.original)
    subject = facts.subject
    kinds = {r.action for r in notice.recipients}
    first = next(a for a in ACTIONS if a in kinds)
    global_ = not all(_ascii(r.final_recipient) for r in notice.recipients) or not _ascii(notice.to)
    header, _ = _split(notice.original)
    utf8_header = not header.isascii()

    text = _readable(notice, subject)
    text_body = email.quoprimime.body_encode(text.encode("utf-8").decode("latin-1"), eol="\r\n").encode(
        "ascii"
    )
    status = _status_fields(notice).encode("utf-8")
    full = first == "failed" and (notice.ret or "FULL").upper() == "FULL"
    if full and len(notice.original) <= MAX_RETURNED_CONTENT:
        returned = _part("message/global" if utf8_header else "message/rfc822", notice.original)
    else:
        returned = _part("message/global-headers" if utf8_header else "text/rfc822-headers", header)
    boundary = _boundary(text_body, status, notice.original)
    status_type = "message/global-delivery-status" if global_ else "message/delivery-status"
    parts = [
        b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
        b"Content-Description: Notification\r\n\r\n" + text_body,
        _part(status_type, status, "Content-Description: Delivery report\r\n"),
        returned,
    ]
    sender = notice.postmaster or f"postmaster@{notice.reporting_mta}"
    fields = [
        f"From: Mail Delivery System <{sender}>",
        f"To: <{notice.to}>",
        _header("Subject", f"{_SUBJECTS[first]}: {subject}" if subject else _SUBJECTS[first]),
        f"Date: {_date(now)}",
        f"Message-ID: {message_id}",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
    ]
    if facts.message_id:
        fields += [f"In-Reply-To: {facts.message_id}", f"References: {facts.message_id}"]
    out = bytearray("\r\n".join(fields).encode("utf-8") + b"\r\n\r\n")
    out += b"This is a MIME-formatted delivery status notification.\r\n"
    for part in parts:
        out += f"\r\n--{boundary}\r\n".encode() + part
        if not part.endswith(b"\r\n"):
            out += b"\r\n"
    out += f"\r\n--{boundary}--\r\n".encode()
    return bytes(out)
