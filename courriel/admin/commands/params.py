"""Parameter values as an administrator types them: `36MB`, `unlimited`, `$true`, `00:10:00`, `a,b,c`.

The command line (and the admin API, for text input) hands strings here; each is turned into the
type of the model field it sets, read from the dataclass itself, so a new connector parameter
needs no parsing code. Values follow Exchange's cmdlet conventions (ByteQuantifiedSize, TimeSpan,
`$true`/`$false`, `$null`, multi-valued parameters separated by commas).
"""

from __future__ import annotations

import enum
import re
import typing
from collections.abc import Mapping
from typing import Any

from courriel.core.errors import PermanentError
from courriel.org.codec import exchange_name, field_types, optional_inner

UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)?\s*\Z", re.IGNORECASE)
_TIMESPAN = re.compile(r"\s*(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)\s*\Z")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*\Z", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
NULLS = ("$null", "null")
UNLIMITED = "unlimited"


def parse_size(text: str, *, allow_unlimited: bool = True) -> int | None:
    """`36MB`, `512 KB`, `1.5GB`, `1048576` (bytes) or `unlimited` (None); units are binary as in Exchange."""
    if text.strip().lower() == UNLIMITED:
        if not allow_unlimited:
            raise PermanentError("this size cannot be unlimited")
        return None
    match = _SIZE.match(text)
    if match is None:
        raise PermanentError(f"{text!r} is not a size (examples: 36MB, 512KB, 1GB, unlimited)")
    return int(float(match[1]) * UNITS[(match[2] or "").upper()])


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "$true", "yes"):
        return True
    if value in ("false", "$false", "no"):
        return False
    raise PermanentError(f"{text!r} is not true or false")


def parse_duration(text: str) -> float:
    """Seconds from `600`, `30s`, `10min`, `4h`, `2d` or an Exchange TimeSpan `[d.]hh:mm:ss`."""
    span = _TIMESPAN.match(text)
    if span is not None:
        days, hours, minutes, seconds = int(span[1] or 0), int(span[2]), int(span[3]), float(span[4])
        if minutes > 59 or seconds >= 60 or hours > 23:
            raise PermanentError(f"{text!r} is not a valid [d.]hh:mm:ss time span")
        return days * 86400 + hours * 3600 + minutes * 60 + seconds
    match = _DURATION.match(text)
    if match is None:
        raise PermanentError(f"{text!r} is not a duration (examples: 600, 30s, 10min, 4h, 2d, 00:10:00)")
    return float(match[1]) * _DURATION_UNITS[(match[2] or "").lower()]


def parse_list(text: str) -> list[str]:
    """A multi-valued parameter: comma-separated; an empty text or `$null` clears it."""
    if text.strip().lower() in NULLS:
        return []
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_address_spaces(text: str) -> list[tuple[str, int]]:
    """`SMTP:*;1,example.com;10` → [("SMTP:*", 1), ("example.com", 10)]; the cost defaults to 1."""
    out = []
    for item in parse_list(text):
        pattern, _, cost = item.partition(";")
        if cost and not cost.strip().isdigit():
            raise PermanentError(f"address space {item!r}: the cost must be a number 1-100")
        out.append((pattern.strip(), int(cost) if cost else 1))
    return out


def is_size_field(name: str) -> bool:
    return name.endswith(("_size", "_quota"))


def parse_value(cls: type, name: str, text: str) -> Any:
    """`text` as the value of field `name` of dataclass `cls`."""
    where = exchange_name(name)
    tp, optional = optional_inner(field_types(cls)[name])
    try:
        if typing.get_origin(tp) is tuple:
            args = typing.get_args(tp)
            if typing.get_origin(args[0]) is tuple:
                return parse_address_spaces(text)
            return parse_list(text)
        # `$null` clears an optional setting; for a number, None means unlimited.
        if optional and text.strip().lower() in (NULLS + (UNLIMITED,) if tp is int else NULLS):
            return None
        if tp is bool:
            return parse_bool(text)
        if tp is int:
            if is_size_field(name):
                return parse_size(text, allow_unlimited=False)
            if not text.strip().lstrip("-").isdigit():
                raise PermanentError(f"{text!r} is not a whole number")
            return int(text)
        if tp is float:
            return parse_duration(text)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return text.strip()  # the directory matches it case-insensitively and lists the choices
        return text
    except PermanentError as exc:
        raise PermanentError(f"{where}: {exc.detail}") from None


def parse_params(cls: type, raw: Mapping[str, str | None]) -> dict[str, Any]:
    """Every given (not None) text parameter of `raw`, typed for `cls`; unknown names are refused."""
    known = field_types(cls)
    out: dict[str, Any] = {}
    for name, text in raw.items():
        if text is None:
            continue
        if name not in known:
            raise PermanentError(f"unknown parameter {name!r}")
        out[name] = parse_value(cls, name, text)
    return out
