"""Directory objects as plain records (JSON-ready dicts) for `--json` output and the admin API.

Secrets never leave: a mailbox's password hash becomes `has_password`, a send connector's smart
host password is masked.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from courriel.org.model import Recipient, SendConnector

MASK = "********"


def plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def record(obj: Any) -> dict[str, Any]:
    """A dataclass as a dict of JSON values, without secrets."""
    out = {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Recipient):
        out["has_password"] = out.pop("password_hash") is not None
    if isinstance(obj, SendConnector) and out.get("auth_password"):
        out["auth_password"] = MASK
    return out
