#!/usr/bin/env python3
"""Extract the facts the tests need from Leap's published API definitions.

Usage: python scripts/extract_leap_contract.py LEAP_API_DIR [--out tests/leap_contract]

LEAP_API_DIR holds Leap's yml definitions (OpenAPI 3.0 and one AsyncAPI 3.0 rendering).
Leap's prose stays out of the repository: the schemas are written without descriptions,
summaries, titles or vendor extensions, and every example is written on its own, so the
tests can read Leap's contract from the repository alone. Written under --out:

- schemas/<name>.json   each definition without prose ($ref paths unchanged, examples removed)
- examples/<name>/*.json every object or array example, one file each, named by its path
- manifest.json          sources (sha256), and every example with where it came from, the
                         schema it belongs to, and (scalar examples) its value inline
- SOURCE.md              the same, for people

Re-running on unchanged sources changes nothing (the extraction date is kept while the
sources' digests are unchanged).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "leap_contract"

# Keys dropped wherever they are keywords (not property names): Leap's prose and the
# examples, which are written out separately.
PROSE_KEYS = {"description", "summary", "title", "externalDocs", "termsOfService", "contact"}
EXAMPLE_KEYS = {"example", "examples"}
# Keywords whose value maps names (property names, paths, status codes, media types...) to
# objects: the names are kept whatever they are, the objects below them are cleaned.
NAME_MAPS = {
    "properties",
    "patternProperties",
    "definitions",
    "$defs",
    "schemas",
    "paths",
    "responses",
    "parameters",
    "requestBodies",
    "headers",
    "content",
    "messages",
    "channels",
    "operations",
    "mapping",
    "securitySchemes",
    "callbacks",
    "links",
    "variables",
    "servers",
    "encoding",
}

JSON = Any


class _Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: `2024-05-01T04:00:00Z` stays the string Leap wrote."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path: Path) -> JSON:
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Loader)  # noqa: S506  # a SafeLoader subclass


def pointer(parts: list[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(doc: JSON, ref: str) -> tuple[list[str], JSON]:
    """A local `#/a/b` reference: its path and target."""
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are expected, got {ref!r}")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]
    node = doc
    for p in parts:
        node = node[p]
    return parts, node


# ---- schemas without prose ---------------------------------------------------------------


def strip(node: JSON, names_here: bool = False) -> JSON:
    """`node` without prose or examples; `names_here`: its keys are names, not keywords."""
    if isinstance(node, list):
        return [strip(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, JSON] = {}
    for key, value in node.items():
        key = str(key)
        if names_here:
            out[key] = strip(value)
            continue
        if key in PROSE_KEYS or key in EXAMPLE_KEYS or key.startswith("x-"):
            continue
        if key == "info" and isinstance(value, dict):
            out[key] = {"version": str(value.get("version", ""))}
            continue
        if key == "tags" and isinstance(value, list) and all(isinstance(t, dict) for t in value):
            out[key] = [{"name": t["name"]} for t in value if "name" in t]
            continue
        nested_names = key in NAME_MAPS and isinstance(value, dict)
        out[key] = strip(value, names_here=nested_names)
    return out


def clean_components(doc: JSON) -> JSON:
    cleaned = strip(doc)
    components = cleaned.get("components", {})
    components.pop("examples", None)  # named examples live in examples/
    return cleaned


# ---- examples ----------------------------------------------------------------------------


@dataclass
class Example:
    source: str
    parts: list[str]
    kind: str
    value: JSON
    schema: str | None  # JSON pointer into schemas/<source>.json
    name: str | None = None
    context: dict[str, str] = field(default_factory=dict)

    @property
    def pointer(self) -> str:
        return pointer(self.parts)


def _schema_of_media(doc: JSON, parts: list[str], media: JSON) -> str | None:
    schema = media.get("schema")
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return pointer(resolve(doc, schema["$ref"])[0])
    return pointer([*parts, "schema"])


def _operation_context(parts: list[str]) -> dict[str, str]:
    """For an example under paths: method, path, direction and status."""
    if len(parts) < 3 or parts[0] != "paths":
        return {}
    ctx = {"path": parts[1], "method": parts[2].upper()}
    if len(parts) > 4 and parts[3] == "responses":
        ctx.update(direction="response", status=parts[4])
    elif len(parts) > 3 and parts[3] == "requestBody":
        ctx["direction"] = "request"
    return ctx


class Collector:
    def __init__(self, source: str, doc: JSON) -> None:
        self.source = source
        self.doc = doc
        self.found: list[Example] = []
        self.component_usage: dict[str, set[str]] = {}

    def add(self, parts: list[str], kind: str, value: JSON, schema: str | None, **kw: Any) -> None:
        self.found.append(Example(self.source, parts, kind, value, schema, **kw))

    def walk(self, node: JSON, parts: list[str], names_here: bool = False) -> None:
        if isinstance(node, list):
            for i, v in enumerate(node):
                self.walk(v, [*parts, str(i)])
            return
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            key = str(key)
            here = [*parts, key]
            if names_here:
                self.walk(value, here)
                continue
            if key == "example":
                self._example(node, parts, value)
            elif key == "examples":
                self._examples(node, parts, value)
            elif not key.startswith("x-") and key not in PROSE_KEYS:
                self.walk(value, here, names_here=key in NAME_MAPS and isinstance(value, dict))

    def _is_media_or_parameter(self, parts: list[str]) -> bool:
        return len(parts) >= 2 and parts[-2] == "content"

    def _example(self, holder: JSON, parts: list[str], value: JSON) -> None:
        ctx = _operation_context(parts)
        if self._is_media_or_parameter(parts):
            schema = _schema_of_media(self.doc, parts, holder)
            self.add([*parts, "example"], "media", value, schema, context=ctx)
        else:  # a schema's own example
            self.add([*parts, "example"], "schema", value, pointer(parts), context=ctx)

    def _examples(self, holder: JSON, parts: list[str], value: JSON) -> None:
        here = [*parts, "examples"]
        ctx = _operation_context(parts)
        if parts == ["components"] and isinstance(value, dict):
            for name, item in value.items():
                self.add([*here, str(name)], "component", item.get("value"), None, name=str(name))
            return
        if len(parts) == 3 and parts[:2] == ["components", "messages"]:
            payload_ref = holder.get("payload", {}).get("$ref")
            schema = pointer(resolve(self.doc, payload_ref)[0]) if payload_ref else None
            for i, item in enumerate(value):
                name = str(item.get("name", i))
                ctx = {"message": str(holder.get("name", parts[-1]))}
                self.add(
                    [*here, name], "message", item.get("payload"), schema, name=name, context=ctx
                )
            return
        if isinstance(value, list):  # JSON Schema `examples`: values of this schema
            for i, item in enumerate(value):
                self.add([*here, str(i)], "schema", item, pointer(parts), context=ctx)
            return
        schema = _schema_of_media(self.doc, parts, holder)
        for name, item in value.items():
            ref = item.get("$ref")
            if ref is not None:
                ref_parts, target = resolve(self.doc, ref)
                self.component_usage.setdefault(pointer(ref_parts), set()).add(schema or "")
                item = target
                ctx = {**ctx, "component": ref_parts[-1]}
            self.add(
                [*here, str(name)], "media", item.get("value"), schema, name=str(name), context=ctx
            )

    def finish(self) -> list[Example]:
        """Named examples take the schema of the media types that use them (when one)."""
        for ex in self.found:
            if ex.kind == "component":
                used = self.component_usage.get(ex.pointer, set()) - {""}
                if len(used) == 1:
                    ex.schema = next(iter(used))
        return self.found


# ---- writing -----------------------------------------------------------------------------


def slug(parts: list[str]) -> str:
    """A stable file name from an example's path (media type and `content` dropped)."""
    kept = [p for p in parts if p not in {"content", "application/json"}]
    cleaned = [re.sub(r"[^A-Za-z0-9_]+", "-", p).strip("-") or "_" for p in kept]
    return ".".join(cleaned)


def dump(value: JSON) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extraction_date(out: Path, sources: list[dict[str, str]]) -> str:
    """Today, unless the previous manifest was made from exactly these sources."""
    manifest = out / "manifest.json"
    if manifest.is_file():
        previous = json.loads(manifest.read_text(encoding="utf-8"))
        if previous.get("sources") == sources:
            return str(previous["extracted_on"])
    return dt.datetime.now(dt.UTC).date().isoformat()


def source_md(manifest: JSON) -> str:
    lines = [
        "# Leap's contract, extracted",
        "",
        "Generated by `scripts/extract_leap_contract.py` from Leap's published API",
        "definitions; do not edit by hand. To refresh, with Leap's yml files in a folder:",
        "",
        "    python scripts/extract_leap_contract.py FOLDER_OF_LEAP_YML_FILES",
        "",
        "Only facts are kept: schemas without their prose (`schemas/`), and every example",
        "payload (`examples/`; scalar examples are inline in `manifest.json`).",
        "What the service relies on is described in `docs/leap-contract.md`.",
        "",
        f"Extracted on {manifest['extracted_on']} from:",
        "",
        "| file | sha256 | examples |",
        "|---|---|---|",
    ]
    for src in manifest["sources"]:
        count = sum(1 for e in manifest["examples"] if e["source"] == src["file"])
        lines.append(f"| `{src['file']}` | `{src['sha256']}` | {count} |")
    files = sum(1 for e in manifest["examples"] if "file" in e)
    lines += ["", f"{len(manifest['examples'])} examples, {files} of them as files.", ""]
    return "\n".join(lines)


def extract(source_dir: Path, out: Path) -> JSON:
    paths = sorted(p for p in source_dir.iterdir() if p.suffix in {".yml", ".yaml"})
    if not paths:
        raise SystemExit(f"no yml files in {source_dir}")
    sources = [{"file": p.name, "sha256": sha256(p)} for p in paths]
    date = extraction_date(out, sources)
    for sub in ("schemas", "examples"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)

    entries: list[JSON] = []
    for path in paths:
        doc = load(path)
        stem = path.stem
        (out / "schemas" / f"{stem}.json").write_text(dump(clean_components(doc)), "utf-8")
        collector = Collector(path.name, doc)
        collector.walk(doc, [])
        taken: set[str] = set()
        for ex in collector.finish():
            entry: JSON = {"source": ex.source, "pointer": ex.pointer, "kind": ex.kind}
            if ex.name is not None:
                entry["name"] = ex.name
            entry["schema"] = ex.schema
            entry.update(ex.context)
            if isinstance(ex.value, dict | list):
                name = slug(ex.parts)
                if name in taken:
                    raise SystemExit(f"two examples would share the file name {name}")
                taken.add(name)
                rel = f"examples/{stem}/{name}.json"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                (out / rel).write_text(dump(ex.value), "utf-8")
                entry["file"] = rel
            else:
                entry["value"] = ex.value
            entries.append(entry)

    manifest = {"extracted_on": date, "sources": sources, "examples": entries}
    (out / "manifest.json").write_text(dump(manifest), "utf-8")
    (out / "SOURCE.md").write_text(source_md(manifest), "utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source_dir", type=Path, help="folder holding Leap's yml definitions")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write")
    args = parser.parse_args(argv)
    if not args.source_dir.is_dir():
        parser.error(f"{args.source_dir} is not a folder")
    manifest = extract(args.source_dir, args.out)
    files = sum(1 for e in manifest["examples"] if "file" in e)
    print(
        f"{len(manifest['sources'])} definitions, {len(manifest['examples'])} examples "
        f"({files} files) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
