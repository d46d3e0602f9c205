"""ESMTP parameters of MAIL and RCPT, and the xtext encoding they use.

MAIL takes SIZE (RFC 1870), BODY (RFC 6152 8BITMIME, RFC 3030 BINARYMIME), SMTPUTF8 (RFC 6531),
RET and ENVID (RFC 3461 DSN) and AUTH (RFC 4954 §5); RCPT takes NOTIFY and ORCPT (RFC 3461).
A parameter the session did not advertise, an unknown one, a repeated one or an ill-formed value
gets `555 5.5.4` (RFC 5321 §4.1.1.11); a SIZE above our limit gets `552 5.3.4` (RFC 1870 §6.1).
xtext (RFC 3461 §4) is decoded here so that policies see plain text, and encoded here for the
outbound client, so the rule lives in one place.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from courriel.core.replies import MESSAGE_TOO_BIG, PARAMS_UNRECOGNIZED

from .commands import ReplyError
from .settings import SessionSettings

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*\Z")
_ASCII_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+\Z")  # RFC 5321 §4.1.2 esmtp-value
_UTF8_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+\Z")  # RFC 6531 §3.3
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-Fa-f]{2})*\Z")
_HEXCHAR = re.compile(r"\+([0-9A-Fa-f]{2})")
_UNITEXT = re.compile(
    r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\x\{[0-9A-Fa-f]{1,6}\})+\Z"
)
_EMBEDDED = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
_NUMBER = re.compile(r"[0-9]{1,20}\Z")  # RFC 1870 §3: size-value, at most 20 digits
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+\Z")

BODY_TYPES = ("7BIT", "8BITMIME", "BINARYMIME")
NOTIFY_VALUES = ("SUCCESS", "FAILURE", "DELAY")
MAX_ENVID = 100  # RFC 3461 §4.4
MAX_ORCPT = 500  # RFC 3461 §4.2


@dataclass(frozen=True, slots=True)
class MailParams:
    """What the client declared on MAIL FROM."""

    size: int | None = None
    body: str = "7BIT"
    smtputf8: bool = False
    ret: str | None = None
    """"FULL" or "HDRS" (RFC 3461 §4.3), None when not given."""
    envid: str | None = None
    """The envelope id, xtext-decoded (RFC 3461 §4.4)."""
    auth: str | None = None
    """The AUTH= submitter, xtext-decoded; "<>" when the client does not know it (RFC 4954 §5)."""


@dataclass(frozen=True, slots=True)
class RcptParams:
    """What the client declared on RCPT TO; None means "not given" so that DSN defaults apply."""

    notify: tuple[str, ...] | None = None
    """Some of SUCCESS, FAILURE, DELAY, or ("NEVER",) alone (RFC 3461 §4.1)."""
    orcpt: tuple[str, str] | None = None
    """(addr-type, original recipient decoded) (RFC 3461 §4.2, RFC 6533 for "utf-8")."""


def decode_xtext(text: str) -> str:
    """xtext to text (RFC 3461 §4); raises ValueError when malformed or not UTF-8 underneath."""
    if not _XTEXT.match(text):
        raise ValueError("malformed xtext")
    if "+" not in text:
        return text
    raw = _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), text)
    return raw.encode("latin-1").decode("utf-8")


def encode_xtext(text: str) -> str:
    """Text to xtext: "+", "=", controls, space and non-ASCII octets become +HH (RFC 3461 §4)."""
    out = []
    for byte in text.encode("utf-8"):
        if 0x21 <= byte <= 0x7E and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def decode_utf8_address(text: str) -> str:
    """utf-8-addr-xtext or -unitext to text: `\\x{HEX}` escapes (RFC 6533 §3)."""
    if not _UNITEXT.match(text):
        raise ValueError("malformed utf-8 address")

    def codepoint(match: re.Match[str]) -> str:
        value = int(match.group(1), 16)
        if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            raise ValueError("invalid code point")
        return chr(value)

    return _EMBEDDED.sub(codepoint, text)


def parse_mail_params(tokens: Sequence[str], settings: SessionSettings, *, auth_offered: bool) -> MailParams:
    """MAIL FROM parameters, checked against what the EHLO reply advertised."""
    items = _split(tokens, utf8=settings.smtputf8 and any(t.upper() == "SMTPUTF8" for t in tokens))
    size: int | None = None
    body, smtputf8 = "7BIT", False
    ret = envid = auth = None
    for key, value in items.items():
        if key == "SIZE" and value is not None and _NUMBER.match(value):
            size = int(value)
            if settings.max_message_size and size > settings.max_message_size:
                raise ReplyError(MESSAGE_TOO_BIG, protocol_error=False)  # RFC 1870 §6.1
        elif key == "BODY" and value is not None and value.upper() in _bodies(settings):
            body = value.upper()
        elif key == "SMTPUTF8" and value is None and settings.smtputf8:
            smtputf8 = True
        elif key == "RET" and settings.dsn and value is not None and value.upper() in ("FULL", "HDRS"):
            ret = value.upper()
        elif key == "ENVID" and settings.dsn and value is not None:
            envid = _xtext(value, MAX_ENVID)
        elif key == "AUTH" and auth_offered and value is not None:
            auth = _xtext(value, 0)
        else:
            raise ReplyError(PARAMS_UNRECOGNIZED)
    return MailParams(size, body, smtputf8, ret, envid, auth)


def parse_rcpt_params(tokens: Sequence[str], settings: SessionSettings, *, utf8: bool) -> RcptParams:
    """RCPT TO parameters; DSN ones only when DSN was advertised (RFC 3461 §4)."""
    notify: tuple[str, ...] | None = None
    orcpt: tuple[str, str] | None = None
    for key, value in _split(tokens, utf8=utf8).items():
        if not settings.dsn or value is None:
            raise ReplyError(PARAMS_UNRECOGNIZED)
        if key == "NOTIFY":
            notify = _notify(value)
        elif key == "ORCPT":
            orcpt = _orcpt(value)
        else:
            raise ReplyError(PARAMS_UNRECOGNIZED)
    return RcptParams(notify, orcpt)


def _bodies(settings: SessionSettings) -> tuple[str, ...]:
    # RFC 3030 §3: BINARYMIME only where CHUNKING is offered.
    return BODY_TYPES if settings.chunking else BODY_TYPES[:2]


def _split(tokens: Sequence[str], *, utf8: bool) -> dict[str, str | None]:
    """`KEY[=VALUE]` tokens to an upper-cased keyword map; repeats and bad syntax are refused."""
    value_syntax = _UTF8_VALUE if utf8 else _ASCII_VALUE
    items: dict[str, str | None] = {}
    for token in tokens:
        key, eq, value = token.partition("=")
        key = key.upper()
        if not _KEYWORD.match(key) or key in items or (eq and not value_syntax.match(value)):
            raise ReplyError(PARAMS_UNRECOGNIZED)
        items[key] = value if eq else None
    return items


def _xtext(value: str, limit: int) -> str:
    if limit and len(value) > limit:
        raise ReplyError(PARAMS_UNRECOGNIZED)
    try:
        return decode_xtext(value)
    except ValueError:
        raise ReplyError(PARAMS_UNRECOGNIZED) from None


def _notify(value: str) -> tuple[str, ...]:
    words = value.upper().split(",")
    if words == ["NEVER"]:
        return ("NEVER",)
    # RFC 3461 §4.1: NEVER stands alone; the others may be combined, each once.
    if len(set(words)) != len(words) or not all(w in NOTIFY_VALUES for w in words):
        raise ReplyError(PARAMS_UNRECOGNIZED)
    return tuple(words)


def _orcpt(value: str) -> tuple[str, str]:
    addr_type, semicolon, address = value.partition(";")
    if not semicolon or not address or len(value) > MAX_ORCPT or not _ATOM.match(addr_type):
        raise ReplyError(PARAMS_UNRECOGNIZED)
    try:
        if addr_type.lower() == "utf-8":
            return addr_type, decode_utf8_address(address)
        return addr_type, decode_xtext(address)
    except ValueError:
        raise ReplyError(PARAMS_UNRECOGNIZED) from None
