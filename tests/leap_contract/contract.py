"""Leap's examples as extracted into this folder (see SOURCE.md), for tests to read.

`manifest.json` lists every example: its source definition, its JSON pointer there, the
schema it belongs to, and either a file (objects and arrays) or the value (scalars).
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTRACT_DIR = Path(__file__).resolve().parent
JSON = dict[str, Any]


@dataclass(frozen=True)
class Example:
    source: str
    pointer: str
    kind: str
    schema: str | None
    file: str | None
    entry: JSON

    @property
    def id(self) -> str:
        """A short, stable test id: the example's file name or its pointer."""
        if self.file is not None:
            return f"{Path(self.source).stem}:{Path(self.file).stem}"
        return f"{Path(self.source).stem}:{self.pointer}"

    @property
    def value(self) -> Any:
        if self.file is not None:
            return json.loads((CONTRACT_DIR / self.file).read_text(encoding="utf-8"))
        return self.entry["value"]

    @property
    def event_id(self) -> str:
        """A webhook_event_id for an example that has none, the same on every run."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"leap-example:{self.source}#{self.pointer}"))


@functools.cache
def manifest() -> JSON:
    loaded: JSON = json.loads((CONTRACT_DIR / "manifest.json").read_text(encoding="utf-8"))
    return loaded


@functools.cache
def all_examples() -> tuple[Example, ...]:
    return tuple(
        Example(
            source=e["source"],
            pointer=e["pointer"],
            kind=e["kind"],
            schema=e.get("schema"),
            file=e.get("file"),
            entry=e,
        )
        for e in manifest()["examples"]
    )


def examples(source: str, **where: str) -> list[Example]:
    """Examples of one definition whose manifest entries carry the given values."""
    return [
        ex
        for ex in all_examples()
        if ex.source == source and all(ex.entry.get(k) == v for k, v in where.items())
    ]


def example(source: str, pointer: str) -> Any:
    """The value of the one example at `pointer` in `source`."""
    found = [ex for ex in all_examples() if ex.source == source and ex.pointer == pointer]
    assert len(found) == 1, f"{source}#{pointer}: {len(found)} examples"
    return found[0].value


def property_example(source: str, schema: str, prop: str) -> Any:
    """A property's own example, e.g. the `start_date_time` of a group event."""
    return example(source, f"/components/schemas/{schema}/properties/{prop}/example")


def schema_example(source: str, schema: str) -> Any:
    return example(source, f"/components/schemas/{schema}/example")


def named_example(source: str, name: str) -> Any:
    return example(source, f"/components/examples/{name}")
