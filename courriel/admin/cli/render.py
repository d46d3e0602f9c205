"""Output of the `courriel` command: aligned tables (Format-Table), key/value lists (Format-List) and JSON.

Human output shows sizes and time spans as Exchange does (`36 MB (37,748,736 bytes)`, `00:10:00`);
`--json` gives the raw values (bytes, seconds) for scripts.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from courriel.admin.commands.params import UNITS, is_size_field
from courriel.admin.commands.records import plain, record
from courriel.org.codec import exchange_name, field_types, optional_inner

Columns = Sequence[tuple[str, str]]  # (record key, header)


def format_size(value: int | None) -> str:
    """Exchange's ByteQuantifiedSize text: `36 MB (37,748,736 bytes)`; None is Unlimited."""
    if value is None:
        return "Unlimited"
    for unit in ("TB", "GB", "MB", "KB"):
        if value >= UNITS[unit]:
            amount = value / UNITS[unit]
            shown = f"{amount:.0f}" if amount.is_integer() else f"{amount:.2f}".rstrip("0")
            return f"{shown} {unit} ({value:,} bytes)"
    return f"{value} B ({value:,} bytes)"


def format_duration(seconds: float) -> str:
    """Exchange's TimeSpan text: `00:10:00`, `2.00:00:00`."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02}:{minutes:02}:{secs:02}"
    return f"{days}.{text}" if days else text


def cell(value: Any) -> str:
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value)
    return str(value)


def describe(obj: Any) -> list[tuple[str, str]]:
    """A directory object as (Exchange parameter name, display text) pairs, secrets left out."""
    rec = record(obj)
    types = field_types(type(obj))
    out = []
    for key, value in rec.items():
        tp = optional_inner(types[key])[0] if key in types else None
        if is_size_field(key) and (value is None or isinstance(value, int)):
            text = format_size(value)
        elif tp is float and isinstance(value, int | float):
            text = format_duration(value)
        else:
            text = cell(value)
        out.append((exchange_name(key), text))
    return out


def print_json(data: Any, out: TextIO | None = None) -> None:
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = record(data)
    elif isinstance(data, list):
        data = [record(d) if dataclasses.is_dataclass(d) and not isinstance(d, type) else d for d in data]
    json.dump(data, out or sys.stdout, indent=2, ensure_ascii=False, default=str)
    (out or sys.stdout).write("\n")


def print_table(rows: Sequence[dict[str, Any]], columns: Columns, out: TextIO | None = None) -> None:
    """Aligned columns under underlined headers; the last column is not padded."""
    stream = out or sys.stdout
    if not rows:
        stream.write("(none)\n")
        return
    table = [[cell(row.get(key)) for key, _ in columns] for row in rows]
    headers = [header for _, header in columns]
    widths = [max(len(headers[i]), *(len(r[i]) for r in table)) for i in range(len(columns))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    stream.write(line(headers) + "\n")
    stream.write(line(["-" * len(h) for h in headers]) + "\n")
    for r in table:
        stream.write(line(r) + "\n")


def print_list(pairs: Sequence[tuple[str, str]], out: TextIO | None = None) -> None:
    """`Key : value` lines with the colons aligned (Format-List)."""
    stream = out or sys.stdout
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        stream.write(f"{key.ljust(width)} : {value}".rstrip() + "\n")


def progress(line: str) -> None:
    """A step of a long operation, shown as it happens."""
    print(line, flush=True)


def emit(rows: Sequence[Any], columns: Columns, as_json: bool) -> None:
    """A listing: records (dicts or directory objects) as JSON or as a table."""
    if as_json:
        print_json(list(rows))
        return
    print_table([r if isinstance(r, dict) else record(r) for r in rows], columns)


def emit_object(obj: Any, as_json: bool) -> None:
    if as_json:
        print_json(obj)
    else:
        print_list(describe(obj))
