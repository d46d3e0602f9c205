"""BODY and BODYSTRUCTURE fetch items from a scanned MIME tree (mime.py).

RFC 9051 §7.5.2 and §9 (body, body-type-1part, body-type-mpart, body-fields, body-ext-1part,
body-ext-mpart, body-fld-dsp, body-fld-lang, body-fld-loc). BODY is the non-extensible form;
BODYSTRUCTURE adds, for a single part, MD5 (Content-MD5), disposition, language and location, and
for a multipart the parameters, disposition, language and location. text/* parts carry their
line count, message/rfc822 (and message/global, RFC 6532 §3.5) parts the envelope, body and line
count of the encapsulated message. Sizes are the encoded body octets as stored. Names and values
keep their case, as Dovecot does; the encoding defaults to "7bit" (RFC 2045 §6.1).
"""

from __future__ import annotations

from courriel.proto.imap.envelope import envelope
from courriel.proto.imap.mime import Part, parse_content_type, scan, unfold
from courriel.proto.imap.writer import NIL, nstring, string

_EMPTY_ENVELOPE = b"(" + b" ".join([NIL] * 10) + b")"


def _empty_body(extensible: bool) -> bytes:
    tail = b" NIL NIL NIL NIL" if extensible else b""
    return b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0' + tail + b")"


def body_structure(data: bytes, extensible: bool = True, root: Part | None = None) -> bytes:
    """The BODYSTRUCTURE (or BODY when not `extensible`) of a whole message."""
    return _body(data, root if root is not None else scan(data), extensible)


def _params(params: list[tuple[bytes, bytes]]) -> bytes:
    """body-fld-param: ("name" "value" …) or NIL."""
    if not params:
        return NIL
    return b"(" + b" ".join(string(k) + b" " + string(v) for k, v in params) + b")"


def _disposition(value: bytes | None) -> bytes:
    """body-fld-dsp: ("type" params) or NIL. Parsed like a Content-Type without a subtype."""
    if not value:
        return NIL
    parsed = parse_content_type(b"x/" + value)
    if parsed is None:
        return NIL
    _, kind, params = parsed
    return b"(" + string(kind) + b" " + _params(params) + b")"


def _language(value: bytes | None) -> bytes:
    """body-fld-lang: one tag as a string, several as a list (RFC 3282 Content-Language)."""
    if not value:
        return NIL
    tags = [t.strip() for t in value.split(b",") if t.strip()]
    if not tags:
        return NIL
    # Always the list form, as Dovecot writes it: clients must accept both.
    return b"(" + b" ".join(string(t) for t in tags) + b")"


_WANTED = frozenset(
    {
        "content-id",
        "content-description",
        "content-transfer-encoding",
        "content-md5",
        "content-disposition",
        "content-language",
        "content-location",
    }
)


def _fields(data: bytes, part: Part) -> dict[str, bytes]:
    """The first value of each MIME field BODYSTRUCTURE reads, in one pass over the header."""
    found: dict[str, bytes] = {}
    for h in part.headers:
        if h.name in _WANTED and h.name not in found:
            found[h.name] = unfold(data[h.value_start : h.end])
    return found


def _extension(fields: dict[str, bytes]) -> bytes:
    """[SP body-fld-dsp SP body-fld-lang SP body-fld-loc], shared by both part kinds."""
    return b" %s %s %s" % (
        _disposition(fields.get("content-disposition")),
        _language(fields.get("content-language")),
        nstring(fields.get("content-location") or None),
    )


def _lines(data: bytes, part: Part) -> int:
    # Dovecot and Cyrus count line feeds: an unterminated last line is not counted.
    return data.count(b"\n", part.body_start, part.end)


def _body(data: bytes, part: Part, extensible: bool) -> bytes:
    if part.children:
        inner = b"".join(_body(data, child, extensible) for child in part.children)
        out = b"(" + inner + b" " + string(part.subtype)
        if extensible:
            out += b" " + _params(part.params) + _extension(_fields(data, part))
        return out + b")"
    values = _fields(data, part)
    fields = b"%s %s %s %s %s %s %d" % (
        string(part.maintype),
        string(part.subtype),
        _params(part.params),
        nstring(values.get("content-id") or None),
        nstring(values.get("content-description") or None),
        string(values.get("content-transfer-encoding") or b"7bit"),
        part.end - part.body_start,
    )
    if part.message is not None:
        message = part.message
        fields += b" %s %s %d" % (
            envelope(data, message.headers),
            _body(data, message, extensible),
            _lines(data, part),
        )
    elif part.is_message_type:
        # An encoded message/rfc822 cannot be parsed in place, yet the grammar (body-type-msg)
        # still needs an envelope and a body: an empty one of each, as Dovecot sends.
        fields += b" %s %s %d" % (_EMPTY_ENVELOPE, _empty_body(extensible), _lines(data, part))
    elif part.is_type(b"text"):
        fields += b" %d" % _lines(data, part)
    if extensible:
        fields += b" " + nstring(values.get("content-md5") or None) + _extension(values)
    return b"(" + fields + b")"
