"""Deterministic 10,000-message mailbox for the IMAP benchmark (`bench/imap.py`).

The mix is the peer baseline's (`/work/shared/research/peer-baseline.md` §3): bodies with a
median of about 4 KB (0.5–40 KB, 0.5 % about 150 KB), 70 % text/plain, 20 %
multipart/alternative (text and HTML), 10 % multipart/mixed with a base64 attachment; 40 %
`\\Seen`, 5 % `\\Flagged`; the word `meeting` in about a third of the bodies and nowhere
else (not in headers, not in attachments, which are random bytes in base64 over an
alphabet-free payload), so that `SEARCH TEXT meeting` has one right answer, `meeting_hits`,
whatever the server decodes. Messages follow RFC 5322 (CRLF lines, at most 78 characters)
and RFC 2045/2046 for the MIME parts.

The same seed gives byte-identical messages, so both servers hold the same content.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SEED = 20261128
WORDS = [
    "project",
    "report",
    "budget",
    "quarter",
    "review",
    "team",
    "plan",
    "update",
    "schedule",
    "client",
    "office",
    "call",
    "agenda",
    "notes",
    "draft",
    "figures",
    "invoice",
    "travel",
    "lunch",
    "deadline",
    "proposal",
    "design",
    "release",
    "server",
    "network",
    "contract",
    "weekly",
    "monthly",
    "summary",
    "question",
    "answer",
    "follow",
    "thanks",
    "regards",
    "please",
    "attached",
    "document",
    "version",
    "change",
    "issue",
    "ticket",
    "status",
    "order",
    "delivery",
    "account",
]
MEETING = "meeting"
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
START = datetime(2026, 1, 1, tzinfo=UTC)
HIGH_BYTES = bytes(b | 0x80 for b in range(256))  # attachment bytes carry no ASCII word


@dataclass(frozen=True, slots=True)
class GenMessage:
    data: bytes
    seen: bool
    flagged: bool
    internaldate: datetime
    has_meeting: bool


def _text(rng: random.Random, size: int, meeting: bool) -> str:
    """About `size` bytes of 72-column prose; `meeting` once somewhere if asked."""
    words = rng.choices(WORDS, k=max(8, size // 7))
    if meeting:
        words[rng.randrange(len(words))] = MEETING
    lines, line = [], ""
    for w in words:
        if len(line) + len(w) + 1 > 72:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _body_size(rng: random.Random) -> int:
    if rng.random() < 0.005:
        return 150_000
    return int(min(40_000, max(500, rng.lognormvariate(8.3, 0.9))))  # e^8.3 ≈ 4 KB median


def _message(rng: random.Random, i: int) -> GenMessage:
    sender, rcpt = rng.sample(NAMES, 2)
    date = START + timedelta(minutes=7 * i + rng.randrange(7))
    meeting = rng.random() < 1 / 3
    size = _body_size(rng)
    kind = rng.random()
    subject = " ".join(rng.choices(WORDS, k=rng.randint(2, 6))).capitalize()
    headers = [
        f"From: {sender.capitalize()} <{sender}@example.test>",
        f"To: {rcpt.capitalize()} <{rcpt}@example.test>",
        f"Subject: {subject}",
        f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"Message-ID: <bench.{i}.{rng.getrandbits(32):08x}@example.test>",
        "MIME-Version: 1.0",
    ]
    boundary = f"=_b{i:05d}"
    if kind < 0.7:
        headers.append("Content-Type: text/plain; charset=us-ascii")
        body = _text(rng, size, meeting)
    elif kind < 0.9:
        text = _text(rng, size // 2, meeting)
        html = "<html><body><p>\r\n" + text.replace("\r\n", "<br>\r\n") + "</p></body></html>\r\n"
        headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        body = (
            f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}"
            f"--{boundary}\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n{html}"
            f"--{boundary}--\r\n"
        )
    else:
        text = _text(rng, max(300, size // 4), meeting)
        payload = rng.randbytes(max(200, size * 9 // 16)).translate(HIGH_BYTES)
        b64 = base64.encodebytes(payload).decode().replace("\n", "\r\n")
        headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
        body = (
            f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}"
            f'--{boundary}\r\nContent-Type: application/octet-stream; name="data{i}.bin"\r\n'
            f'Content-Disposition: attachment; filename="data{i}.bin"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{b64}"
            f"--{boundary}--\r\n"
        )
    data = ("\r\n".join(headers) + "\r\n\r\n" + body).encode("ascii")
    return GenMessage(
        data=data,
        seen=rng.random() < 0.4,
        flagged=rng.random() < 0.05,
        internaldate=date,
        has_meeting=meeting,
    )


def generate(count: int = 10_000, seed: int = SEED) -> list[GenMessage]:
    """`count` messages, the same ones for the same seed."""
    rng = random.Random(seed)
    return [_message(rng, i) for i in range(count)]


def meeting_hits(messages: list[GenMessage]) -> int:
    """What `SEARCH TEXT meeting` must return on the whole mailbox."""
    return sum(m.has_meeting for m in messages)


if __name__ == "__main__":
    msgs = generate()
    total = sum(len(m.data) for m in msgs)
    sizes = sorted(len(m.data) for m in msgs)
    print(
        f"{len(msgs)} messages, {total / 1e6:.1f} MB, median {sizes[len(sizes) // 2]} B, "
        f"meeting in {meeting_hits(msgs)}, seen {sum(m.seen for m in msgs)}, "
        f"flagged {sum(m.flagged for m in msgs)}"
    )
