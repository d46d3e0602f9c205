"""Settings objects (connectors, transport and protocol settings) to and from JSON documents.

The directory stores a connector's parameters as one JSON document; this module turns a document
(or an admin's `changes`) back into the model's frozen dataclass, checking every value against
the field's declared type: an unknown parameter or a value of the wrong type is refused with a
message that names the parameter, as Set-ReceiveConnector does.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from courriel.core.errors import PermanentError

T = TypeVar("T")


_FIELD_TYPES: dict[type, dict[str, Any]] = {}


def field_types(cls: type) -> dict[str, Any]:
    """A dataclass's fields and their resolved types (the model uses postponed annotations)."""
    found = _FIELD_TYPES.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELD_TYPES[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return found


# Where the cmdlet's spelling is not the plain CamelCase of our field name.
_EXCHANGE_NAMES = {
    "auth_mechanisms": "AuthMechanism",
    "remote_ip_ranges": "RemoteIPRanges",
    "source_ip_address": "SourceIPAddress",
    "require_tls": "RequireTLS",
    "dns_routing_enabled": "DNSRoutingEnabled",
    "ignore_starttls": "IgnoreSTARTTLS",
    "max_connection_from_single_ip": "MaxConnectionFromSingleIP",
    "primary_address": "PrimarySmtpAddress",
    "addresses": "EmailAddresses",
    "external_address": "ExternalEmailAddress",
    "hidden": "HiddenFromAddressListsEnabled",
}


def exchange_name(field: str) -> str:
    """max_message_size → MaxMessageSize, the cmdlet parameter an administrator knows."""
    return _EXCHANGE_NAMES.get(field) or "".join(part.capitalize() for part in field.split("_"))


def optional_inner(tp: Any) -> tuple[Any, bool]:
    """For `X | None` return (X, True); otherwise (tp, False)."""
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def convert(tp: Any, value: Any, where: str) -> Any:
    """`value` (as JSON gives it, or as a caller passes it) as an instance of type `tp`."""
    inner, optional = optional_inner(tp)
    if value is None:
        if optional:
            return None
        raise PermanentError(f"{where} cannot be empty")
    tp = inner
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise PermanentError(f"{where}: expected a list")
        items = list(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(args[0], item, where) for item in items)
        if len(items) != len(args):
            raise PermanentError(f"{where}: expected {len(args)} items")
        return tuple(convert(a, item, where) for a, item in zip(args, items, strict=True))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise PermanentError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PermanentError(f"{where}: expected a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PermanentError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise PermanentError(f"{where}: expected text, got {value!r}")
        return value
    raise TypeError(f"no conversion for {tp!r}")  # a model field of a type this codec lacks


def _enum(cls: type[enum.Enum], value: Any, where: str) -> enum.Enum:
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        # Exchange takes parameter values case-insensitively ("verbose" is Verbose).
        for member in cls:
            if str(member.value).lower() == value.lower():
                return member
    choices = ", ".join(str(m.value) for m in cls)
    raise PermanentError(f"{where}: {value!r} is not one of {choices}")


def apply_changes(obj: T, changes: Mapping[str, Any], what: str, *, fixed: Iterable[str] = ()) -> T:
    """A copy of dataclass `obj` with `changes` applied and type-checked; `fixed` fields are refused."""
    types_ = field_types(type(obj))
    fixed = set(fixed)
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in types_ or key in fixed:
            raise PermanentError(f"{what} has no settable parameter {key!r}")
        clean[key] = convert(types_[key], value, f"{what} {exchange_name(key)}")
    return dataclasses.replace(obj, **clean)  # type: ignore[type-var]


def build(cls: type[T], data: Mapping[str, Any], what: str) -> T:
    """A dataclass instance from a document; missing fields take the model's defaults."""
    types_ = field_types(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in types_:
            raise PermanentError(f"{what} has no parameter {key!r}")
        values[key] = convert(types_[key], value, f"{what} {exchange_name(key)}")
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise PermanentError(f"{what}: {exc}") from None


def to_document(obj: Any, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass: enums as their values, tuples as lists."""
    skip = set(exclude)
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in skip}


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


Bounds = Mapping[str, tuple[float, float]]


def check_bounds(obj: Any, bounds: Bounds, what: str) -> None:
    """Refuse numeric fields outside the cmdlet's documented range (None means unlimited and passes)."""
    for name, (low, high) in bounds.items():
        value = getattr(obj, name)
        if value is not None and not low <= value <= high:
            raise PermanentError(
                f"{what} {exchange_name(name)} must be between {_num(low)} and {_num(high)}, not {_num(value)}"
            )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
