"""JSON Schema validators built from Leap's published OpenAPI 3.0 / AsyncAPI definitions.

The definitions are read from their extraction in the repository (`tests/leap_contract/`,
made by `scripts/extract_leap_contract.py`): the schemas without prose, `$ref` paths intact.
OpenAPI 3.0 schemas are close to JSON Schema draft 4; `nullable: true` is translated to
a `null` type. Leap's event union (`WebhookEventTypeDiscriminator`) is a `oneOf` whose
branches overlap, so an event payload is checked against the branch its discriminator
mapping names, as an OpenAPI tool would do.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jsonschema import (  # type: ignore[import-untyped]  # no stubs in the dev deps
    Draft4Validator,
    Draft202012Validator,
    FormatChecker,
)
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012

CONTRACT_DIR = Path(__file__).resolve().parents[1] / "leap_contract"
SCHEMAS_DIR = CONTRACT_DIR / "schemas"
JSON = dict[str, Any]


def _uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(uuid.UUID(value))


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if "T" not in value or not (value.endswith("Z") or value[-6] in "+-"):
        raise ValueError("not an RFC 3339 date-time with offset")
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _date(value: object) -> bool:
    return not isinstance(value, str) or bool(date.fromisoformat(value))


def _email(value: object) -> bool:
    return not isinstance(value, str) or "@" in value


FORMATS = FormatChecker(formats=())
FORMATS.checks("uuid", raises=ValueError)(_uuid)
FORMATS.checks("date-time", raises=ValueError)(_date_time)
FORMATS.checks("date", raises=ValueError)(_date)
FORMATS.checks("email")(_email)


def _translate_nullable(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _translate_nullable(v) for k, v in node.items()}
        if out.pop("nullable", False) is True and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_translate_nullable(v) for v in node]
    return node


@functools.cache
def document(name: str) -> JSON:
    """One definition by its source name (`meters.yml`), as extracted."""
    path = SCHEMAS_DIR / f"{Path(name).stem}.json"
    loaded: JSON = json.loads(path.read_text(encoding="utf-8"))
    translated: JSON = _translate_nullable(loaded)
    return translated


@functools.cache
def _registry() -> Registry[Any]:
    resources = [
        (f"urn:leap:{name}", Resource.from_contents(document(name), default_specification=DRAFT4))
        for name in ("meters.yml", "enrollments.yml", "webhooks.yml")
    ]
    asyncapi = Resource.from_contents(
        document("events-asyncapi.yml"), default_specification=DRAFT202012
    )
    return Registry().with_resources([*resources, ("urn:leap:events-asyncapi.yml", asyncapi)])


def validator(name: str, schema: str) -> Any:
    ref = {"$ref": f"urn:leap:{name}#/components/schemas/{schema}"}
    return Draft4Validator(ref, registry=_registry(), format_checker=FORMATS)


def errors(name: str, schema: str, instance: object) -> list[str]:
    found = validator(name, schema).iter_errors(instance)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


def event_errors(envelope: JSON) -> list[str]:
    """Problems with one webhook envelope, per webhooks.yml and the AsyncAPI rendering."""
    hooks = document("webhooks.yml")["components"]["schemas"]
    problems = errors("webhooks.yml", "WebhookEventId", envelope.get("webhook_event_id"))
    if set(envelope) != {"webhook_event_id", "payload"}:
        problems.append(f"envelope keys: {sorted(envelope)}")
    payload = envelope.get("payload")
    if not isinstance(payload, dict):
        return [*problems, "payload is not an object"]
    mapping = hooks["WebhookEventTypeDiscriminator"]["discriminator"]["mapping"]
    target = mapping.get(payload.get("webhook_event_type"))
    if target is None:
        return [*problems, f"unknown event type {payload.get('webhook_event_type')!r}"]
    problems += errors("webhooks.yml", target.rsplit("/", 1)[1], payload)
    messages = document("events-asyncapi.yml")["components"]["messages"]
    for message in messages.values():
        if message["name"] == payload["webhook_event_type"]:
            ref = {"$ref": "urn:leap:events-asyncapi.yml" + message["payload"]["$ref"]}
            check = Draft202012Validator(ref, registry=_registry(), format_checker=FORMATS)
            problems += [f"asyncapi: {e.message}" for e in check.iter_errors(envelope)]
    return problems
