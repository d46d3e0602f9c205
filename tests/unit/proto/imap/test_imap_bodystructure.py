"""BODYSTRUCTURE, BODY and ENVELOPE of real-world-shaped messages (messages/*.eml).

The expected strings follow the RFC 9051 §9 grammar and were checked against Dovecot 2.3.19 (the
peer baseline) fetching the same files. Strings Dovecot sends as literals are written quoted here:
both forms are the same IMAP string. Three deliberate departures, all in oddities.eml:
`Content-Type: text` (no subtype) is read as the RFC 2045 §5.2 default text/plain where Dovecot
sends an empty subtype; an encoded message/rfc822 part keeps its octet count without the line
break that belongs to the next boundary (RFC 2046 §5.1.1); `a@b@c` splits at the last "@".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from courriel.proto.imap.bodystructure import body_structure
from courriel.proto.imap.envelope import envelope
from courriel.proto.imap.mime import scan

MESSAGES = Path(__file__).parent / "messages"
_LITERAL = re.compile(rb"\{(\d+)\}\r\n")


def quoted_form(wire: bytes) -> bytes:
    """Rewrite literals as quoted strings so two serialisations of one value compare equal."""
    out, pos = b"", 0
    for m in _LITERAL.finditer(wire):
        if m.start() < pos:
            continue
        size = int(m.group(1))
        value = wire[m.end() : m.end() + size]
        out += wire[pos : m.start()] + b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        pos = m.end() + size
    return out + wire[pos:]


def load(name: str) -> bytes:
    return (MESSAGES / name).read_bytes()


BODYSTRUCTURE: dict[str, bytes] = {
    "alternative.eml": (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 66 1 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 75 1 NIL NIL NIL NIL) '
        b'"alternative" ("boundary" "b1_alt") NIL NIL NIL)'
    ),
    "binary.eml": (
        b'(("text" "plain" ("charset" "iso-8859-1") NIL NIL "quoted-printable" 48 1 NIL NIL NIL '
        b'NIL)("application" "octet-stream" NIL NIL NIL "base64" 24 NIL NIL NIL NIL)'
        b'("application" "x-thing" NIL NIL NIL "x-uuencode" 11 NIL NIL NIL NIL) "mixed" '
        b'("boundary" "zz") NIL NIL NIL)'
    ),
    "broken.eml": (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 8 0 NIL NIL NIL NIL)("text" '
        b'"plain" ("charset" "utf-8") NIL NIL "8bit" 0 0 NIL ("inline" NIL) NIL NIL)'
        b'("application" "octet-stream" NIL NIL NIL "base64" 18 NIL NIL NIL NIL) "mixed" '
        b'("boundary" "frontier") NIL NIL NIL)'
    ),
    "headeronly.eml": (b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'),
    "mixed.eml": (
        b'(("text" "plain" ("charset" "ISO-8859-1") NIL NIL "7bit" 26 1 NIL NIL NIL NIL)'
        b'("application" "pdf" ("name" "report.pdf") "<part1.report@example.com>" "Quarterly '
        b'report" "base64" 106 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "report.pdf" '
        b'"size" "48")) ("en" "fr") "http://example.com/report.pdf") "mixed" ("boundary" '
        b'"----=_Part_0_12345") NIL NIL NIL)'
    ),
    "nested.eml": (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 18 1 NIL NIL NIL NIL)("message" '
        b'"rfc822" NIL NIL "forwarded message" "7bit" 633 ("Mon, 28 Feb 2022 09:00:00 -0800" '
        b'"Lunch on Friday?" (("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" '
        b'"example.org")) (("Alice" NIL "alice" "example.org")) (("Carol" NIL "carol" '
        b'"example.net")) NIL NIL NIL "<inner-1@example.org>") (("text" "plain" ("charset" '
        b'"us-ascii") NIL NIL "7bit" 6 0 NIL NIL NIL NIL)(("text" "html" ("charset" "us-ascii") '
        b'NIL NIL "7bit" 32 0 NIL NIL NIL NIL)("image" "gif" NIL "<dot>" NIL "base64" 48 NIL '
        b'("inline" NIL) NIL NIL) "related" ("boundary" "rel") NIL NIL NIL) "alternative" '
        b'("boundary" "inner") NIL NIL NIL) 28 NIL NIL NIL NIL) "mixed" ("boundary" "outer") NIL '
        b"NIL NIL)"
    ),
    "noboundary.eml": (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" NIL '
        b"NIL NIL NIL)"
    ),
    "oddities.eml": (
        b'(("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL)("text" '
        b'"plain" ("format" "flowed" "charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL)'
        b'("image" "png" ("charset" "x") NIL NIL "7bit" 1 NIL NIL NIL NIL)("text" "plain" ("charset" '
        b'"us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL)("message" "rfc822" NIL NIL NIL "base64" '
        b'1 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL '
        b'NIL "7bit" 0 0 NIL NIL NIL NIL) 0 NIL NIL NIL NIL)("text" "plain" ("charset" '
        b'"us-ascii") NIL NIL "Base64" 1 0 NIL ("ATTACHMENT" ("filename*" "utf-8\'\'%C3%A9.txt")) '
        b'("en") NIL) "mixed" ("boundary" "a") NIL NIL NIL)'
    ),
    "simple.eml": (b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 50 4 NIL NIL NIL NIL)'),
}
BODY: dict[str, bytes] = {
    "alternative.eml": (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 66 1)("text" "html" '
        b'("charset" "utf-8") NIL NIL "quoted-printable" 75 1) "alternative")'
    ),
    "binary.eml": (
        b'(("text" "plain" ("charset" "iso-8859-1") NIL NIL "quoted-printable" 48 1)'
        b'("application" "octet-stream" NIL NIL NIL "base64" 24)("application" "x-thing" NIL NIL '
        b'NIL "x-uuencode" 11) "mixed")'
    ),
    "broken.eml": (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 8 0)("text" "plain" ("charset" '
        b'"utf-8") NIL NIL "8bit" 0 0)("application" "octet-stream" NIL NIL NIL "base64" 18) '
        b'"mixed")'
    ),
    "headeronly.eml": (b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'),
    "mixed.eml": (
        b'(("text" "plain" ("charset" "ISO-8859-1") NIL NIL "7bit" 26 1)("application" "pdf" '
        b'("name" "report.pdf") "<part1.report@example.com>" "Quarterly report" "base64" 106) '
        b'"mixed")'
    ),
    "nested.eml": (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 18 1)("message" "rfc822" NIL NIL '
        b'"forwarded message" "7bit" 633 ("Mon, 28 Feb 2022 09:00:00 -0800" "Lunch on Friday?" '
        b'(("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) (("Alice" '
        b'NIL "alice" "example.org")) (("Carol" NIL "carol" "example.net")) NIL NIL NIL '
        b'"<inner-1@example.org>") (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 0)'
        b'(("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 32 0)("image" "gif" NIL "<dot>" '
        b'NIL "base64" 48) "related") "alternative") 28) "mixed")'
    ),
    "noboundary.eml": (b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")'),
    "oddities.eml": (
        b'(("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 1 0)("text" "plain" ("format" '
        b'"flowed" "charset" "us-ascii") NIL NIL "7bit" 1 0)("image" "png" ("charset" "x") NIL '
        b'NIL "7bit" 1)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0)("message" "rfc822" '
        b'NIL NIL NIL "base64" 1 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" '
        b'("charset" "us-ascii") NIL NIL "7bit" 0 0) 0)("text" "plain" ("charset" "us-ascii") NIL '
        b'NIL "Base64" 1 0) "mixed")'
    ),
    "simple.eml": (b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 50 4)'),
}
ENVELOPE: dict[str, bytes] = {
    "alternative.eml": (
        b'("Tue, 1 Mar 2022 10:00:00 +0100" "=?UTF-8?B?Q2Fmw6kgZGVtYWlu?=" '
        b'(("=?UTF-8?Q?Andr=C3=A9?=" NIL "andre" "example.fr")) (("=?UTF-8?Q?Andr=C3=A9?=" NIL '
        b'"andre" "example.fr")) (("=?UTF-8?Q?Andr=C3=A9?=" NIL "andre" "example.fr")) ((NIL NIL '
        b'"team" "example.fr")) NIL NIL NIL "<alt-1@example.fr>")'
    ),
    "binary.eml": (
        b'(NIL "binary and qp" ((NIL NIL "a" "example.com")) ((NIL NIL "a" "example.com")) ((NIL '
        b'NIL "a" "example.com")) NIL NIL NIL NIL NIL)'
    ),
    "broken.eml": (
        b'(NIL "broken" ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) ((NIL NIL '
        b'"undisclosed-recipients" NIL)(NIL NIL NIL NIL)) ((NIL NIL "undisclosed-recipients" NIL)'
        b'(NIL NIL NIL NIL)) (("Mary Smith" "@machine.tld" "mary" "example.net")("John Doe" NIL '
        b'"jdoe" "one.test")("Giant; \\"Big\\" Box" NIL "sysservices" "example.net")(NIL NIL '
        b'"nobody" "MISSING_DOMAIN")) NIL NIL NIL NIL)'
    ),
    "headeronly.eml": (
        b'(NIL "only headers" ((NIL NIL "a" "example.com")) ((NIL NIL "a" "example.com")) ((NIL '
        b'NIL "a" "example.com")) NIL NIL NIL NIL NIL)'
    ),
    "mixed.eml": (
        b'("Wed, 2 Mar 2022 08:30:00 +0000" "Report attached" (("Bob" NIL "bob" "example.com")) '
        b'(("Bob" NIL "bob" "example.com")) (("Bob" NIL "bob" "example.com")) (("Alice" NIL '
        b'"alice" "example.org")) NIL NIL NIL "<mixed-1@example.com>")'
    ),
    "nested.eml": (
        b'("Thu, 3 Mar 2022 12:00:00 -0500" "Fwd: Lunch on Friday?" (("Carol" NIL "carol" '
        b'"example.net")) (("Carol" NIL "carol" "example.net")) (("Carol" NIL "carol" '
        b'"example.net")) (("Bob" NIL "bob" "example.com")) NIL NIL NIL "<nested-1@example.net>")'
    ),
    "noboundary.eml": (
        b'(NIL "no boundary" ((NIL NIL "a" "example.com")) ((NIL NIL "a" "example.com")) ((NIL '
        b'NIL "a" "example.com")) NIL NIL NIL NIL NIL)'
    ),
    "oddities.eml": (
        b'(NIL NIL ((NIL NIL "x" "MISSING_DOMAIN")) ((NIL NIL "x" "MISSING_DOMAIN")) ((NIL NIL '
        b'"x" "MISSING_DOMAIN")) ((NIL NIL "MISSING_MAILBOX" "x")(NIL NIL "MISSING_MAILBOX" '
        b'"MISSING_DOMAIN")(NIL "@a" "MISSING_MAILBOX" "MISSING_DOMAIN")(NIL NIL "q" '
        b'"MISSING_DOMAIN")(NIL NIL "a@b" "c")) NIL NIL NIL NIL)'
    ),
    "simple.eml": (
        b'("Mon, 7 Feb 1994 21:52:25 -0800 (PST)" "Lunch on Friday?" (("Alice Q. Example" NIL '
        b'"alice" "example.org")) (("Alice Q. Example" NIL "alice" "example.org")) (("Alice Q. '
        b'Example" NIL "alice" "example.org")) ((NIL NIL "bob" "example.com")("Carol" NIL "carol" '
        b'"example.net")) ((NIL NIL "friends" NIL)(NIL NIL "dave" "example.com")("Eve" NIL "eve" '
        b'"example.com")(NIL NIL NIL NIL)) NIL "<1234@example.com>" '
        b'"<B27397-0100000@example.org>")'
    ),
}


@pytest.mark.parametrize("name", sorted(BODYSTRUCTURE))
def test_bodystructure(name: str) -> None:
    data = load(name)
    assert quoted_form(body_structure(data, extensible=True)) == BODYSTRUCTURE[name]


@pytest.mark.parametrize("name", sorted(BODY))
def test_body_non_extensible(name: str) -> None:
    data = load(name)
    assert quoted_form(body_structure(data, extensible=False)) == BODY[name]


@pytest.mark.parametrize("name", sorted(ENVELOPE))
def test_envelope(name: str) -> None:
    data = load(name)
    assert quoted_form(envelope(data, scan(data).headers)) == ENVELOPE[name]


def test_every_sample_has_expectations() -> None:
    names = {p.name for p in MESSAGES.glob("*.eml")}
    assert names == set(BODYSTRUCTURE) == set(BODY) == set(ENVELOPE)


def test_eight_bit_strings_go_out_as_literals() -> None:
    data = b"Subject: Gr\xc3\xbc\xc3\x9fe\r\nFrom: a@b.example\r\n\r\nx\r\n"
    env = envelope(data, scan(data).headers)
    assert env.startswith(b'(NIL {7}\r\nGr\xc3\xbc\xc3\x9fe ((NIL NIL "a" "b.example"))')


def test_shared_tree_gives_same_result() -> None:
    data = load("nested.eml")
    root = scan(data)
    assert body_structure(data, True, root) == body_structure(data, True)
