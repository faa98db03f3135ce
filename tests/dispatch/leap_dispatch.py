"""Leap's dispatching definitions for tests: its example payloads and schema validators,
read from the files extracted into tests/leap_contract/ (scripts/extract_leap_contract.py).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft4Validator  # type: ignore[import-untyped]  # no stubs
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.leap_contract import contract
from tests.support.leap_schemas import FORMATS, document

JSON = dict[str, Any]
DOC = "dispatching.yml"
_URN = "urn:leap:dispatching.yml"


def _normalise(value: Any) -> Any:
    """YAML reads unquoted instants as datetimes: back to the strings Leap sends."""
    return json.loads(json.dumps(value, default=lambda v: v.isoformat().replace("+00:00", "Z")))


def notification_examples() -> list[tuple[str, JSON]]:
    """Every example of a dispatch notification body Leap publishes, named."""
    found: list[tuple[str, JSON]] = []
    for path in (
        "/dispatch/meter/webhook/integration_test",
        "/dispatch/group/webhook/integration_test",
    ):
        kind = path.split("/")[2]
        for ex in contract.examples(DOC, path=path, kind="media", direction="request"):
            found.append((f"{kind}: {ex.entry['name']}", _normalise(ex.value)))
    for schema in (
        "WebhookMeterDispatchIntegrationTestRequest",
        "WebhookGroupDispatchIntegrationTestRequest",
    ):
        found.append((f"{schema} example", _normalise(contract.schema_example(DOC, schema))))
    return found


def search_examples() -> list[tuple[str, str, JSON]]:
    """(kind, schema, example) of the two search answers."""
    return [
        (kind, name, _normalise(contract.schema_example(DOC, name)))
        for kind, name in (
            ("meter", "SearchMeterDispatchEventResponse"),
            ("group", "SearchGroupDispatchEventResponse"),
        )
    ]


@functools.cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(document(DOC), default_specification=DRAFT4)
    registry: Registry[Any] = Registry().with_resource(_URN, resource)
    return registry


def errors(schema: str, instance: object) -> list[str]:
    ref = {"$ref": f"{_URN}#/components/schemas/{schema}"}
    check = Draft4Validator(ref, registry=_registry(), format_checker=FORMATS)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in check.iter_errors(instance)
    ]
