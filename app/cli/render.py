"""Records and lists as text for people: key/value tables, nested lists as tables."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.table import Table

from app.cli.common import out

_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(?:Z|\+00:00)")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def text(value: Any) -> str:
    """A value as people read it: `-` for none, yes/no, timestamps to the second."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(text(v) for v in value) or "-"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    plain = str(value)
    # ISO timestamps to the second, as people read them: 2026-11-30 16:34:11Z
    stamp = _TIMESTAMP.fullmatch(plain)
    return f"{stamp[1]} {stamp[2]}Z" if stamp else plain


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def record(title: str, data: Mapping[str, Any]) -> None:
    """One record: scalar fields as `name  value` lines; lists of objects as tables below."""
    fields = Table(title=title, title_justify="left", show_header=False, box=box.SIMPLE)
    fields.add_column(style="bold")
    fields.add_column(overflow="fold")
    nested: list[tuple[str, list[dict[str, Any]]]] = []
    for name, value in _flatten(data):
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            nested.append((name, value))
        else:
            fields.add_row(name, text(value))
    out.print(fields)
    for name, rows in nested:
        if len({k for row in rows for k, v in _flatten(row) if v not in (None, "", [])}) > 5:
            for number, row in enumerate(rows, 1):  # too wide for one table
                record(f"{name} {number}/{len(rows)}", row)
        else:
            rows_table(name, rows)


def rows_table(
    title: str | None, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> None:
    """Rows of objects as one table; nested objects flattened to dotted columns."""
    flat = [{k: text(v) for k, v in _flatten(row)} for row in rows]
    names = list(columns or dict.fromkeys(k for row in flat for k in row))
    if columns is None:  # a nested list: leave out columns empty in every row
        names = [n for n in names if any(row.get(n, "-") != "-" for row in flat)]
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in names:
        ids = all(_UUID.fullmatch(row.get(name, "-")) or row.get(name) == "-" for row in flat)
        # Ids are never folded (people copy them); headers keep their last dotted part.
        table.add_column(name.rsplit(".", 1)[-1], overflow="fold", no_wrap=bool(ids and flat))
    for row in flat:
        table.add_row(*(row.get(name, "-") for name in names))
    out.print(table)
