"""scripts/extract_leap_contract.py on a small definition written here: what it keeps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.settings import ROOT

SCRIPT = ROOT / "scripts" / "extract_leap_contract.py"

DEFINITION = """\
openapi: 3.0.2
info:
  title: Some title
  description: Some prose that must not be copied.
  version: "2"
x-logo: prose
paths:
  /v2/things/{id}:
    get:
      summary: Get a thing
      description: Long prose.
      responses:
        "200":
          description: OK
          content:
            application/json:
              examples:
                first one:
                  $ref: "#/components/examples/First"
              schema:
                $ref: "#/components/schemas/Thing"
components:
  examples:
    First:
      summary: prose
      value:
        id: 11111111-1111-1111-1111-111111111111
        at: 2024-05-01T04:00:00Z
  schemas:
    Thing:
      description: prose
      title: Thing
      example:
        id: 22222222-2222-2222-2222-222222222222
        description: a property called description
      required: [id]
      properties:
        id:
          type: string
          format: uuid
          example: 33333333-3333-3333-3333-333333333333
        description:
          type: string
          description: prose about the property named description
          maxLength: 10
          nullable: true
        kind:
          type: string
          enum: [A, B]
          x-enum-varnames: [KIND_A, KIND_B]
"""


def run(source: Path, out: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


def test_schemas_keep_facts_and_drop_prose(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "things.yml").write_text(DEFINITION)
    out = tmp_path / "out"
    assert "1 definitions, 4 examples (3 files)" in run(tmp_path / "src", out)
    schema = json.loads((out / "schemas" / "things.json").read_text())
    assert schema["info"] == {"version": "2"}
    assert "x-logo" not in schema
    assert "examples" not in schema["components"]
    thing = schema["components"]["schemas"]["Thing"]
    assert thing == {
        "required": ["id"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "description": {"type": "string", "maxLength": 10, "nullable": True},
            "kind": {"type": "string", "enum": ["A", "B"]},
        },
    }
    response = schema["paths"]["/v2/things/{id}"]["get"]["responses"]["200"]
    assert response == {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}
    }
    assert "prose" not in (out / "schemas" / "things.json").read_text()


def test_every_example_is_written_with_its_schema(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "things.yml").write_text(DEFINITION)
    out = tmp_path / "out"
    run(tmp_path / "src", out)
    manifest = json.loads((out / "manifest.json").read_text())
    by_pointer = {e["pointer"]: e for e in manifest["examples"]}
    media = by_pointer[
        "/paths/~1v2~1things~1{id}/get/responses/200/content/application~1json/examples/first one"
    ]
    assert media["schema"] == "/components/schemas/Thing"
    assert (media["method"], media["status"], media["component"]) == ("GET", "200", "First")
    value = json.loads((out / media["file"]).read_text())
    assert value["at"] == "2024-05-01T04:00:00Z"  # timestamps stay as Leap wrote them
    named = by_pointer["/components/examples/First"]
    assert named["schema"] == "/components/schemas/Thing"  # taken from where it is used
    own = by_pointer["/components/schemas/Thing/example"]
    assert json.loads((out / own["file"]).read_text())["description"].startswith("a property")
    scalar = by_pointer["/components/schemas/Thing/properties/id/example"]
    assert scalar["value"] == "33333333-3333-3333-3333-333333333333"
    assert "file" not in scalar
    assert (out / "examples" / "things" / "components.schemas.Thing.example.json").is_file()
    assert manifest["sources"][0]["file"] == "things.yml"
    assert "things.yml" in (out / "SOURCE.md").read_text()


def test_running_again_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "things.yml").write_text(DEFINITION)
    out = tmp_path / "out"
    run(tmp_path / "src", out)
    first = snapshot(out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["extracted_on"] = "2000-01-01"  # an earlier run from the same sources
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "examples" / "things" / "stale.json").write_text("{}")
    run(tmp_path / "src", out)
    again = snapshot(out)
    assert json.loads(again["manifest.json"])["extracted_on"] == "2000-01-01"
    assert "examples/things/stale.json" not in again
    assert set(again) == set(first)
    assert {k: v for k, v in again.items() if k not in ("manifest.json", "SOURCE.md")} == {
        k: v for k, v in first.items() if k not in ("manifest.json", "SOURCE.md")
    }
