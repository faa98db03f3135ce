"""Leap's API and dispatch examples: read by the project's models, served alike by the fake Leap.

- Every extracted example is listed in the manifest and points at a schema that exists.
- Meter Details and Meter Enrollment response examples parse with the models the service
  reads Leap's API with (app/sync/leap_models.py), and nothing Leap wrote is lost.
- Search request examples are valid filters for the service and for the fake Leap; error
  examples have the shape the fake Leap answers with.
- Dispatch examples load and validate against the extracted dispatching schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator  # type: ignore[import-untyped]  # no stubs in dev deps
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from app.leap.models import EnrollmentPage, LeapEnrollment, LeapMeter, MeterFilter, MeterPage
from app.leap_sim.server import RunningSim, serve_in_thread
from tests.leap_contract.contract import CONTRACT_DIR, Example, all_examples, examples, manifest
from tests.support.leap_schemas import FORMATS, document, errors
from tests.support.sim import API_KEY, make_state

METERS = "meters.yml"
ENROLL = "enrollments.yml"
DISPATCH = "dispatching.yml"
JSON = dict[str, Any]


def with_schema(source: str, schema: str) -> list[Example]:
    """Object examples of `source` that belong to `components/schemas/<schema>`."""
    return [
        ex
        for ex in examples(source)
        if ex.schema == f"/components/schemas/{schema}" and ex.file is not None
    ]


def ids(ex: Example) -> str:
    return ex.id


# ---- the extraction itself ----------------------------------------------------------------


def test_manifest_lists_every_example_file_and_nothing_else() -> None:
    listed = {ex.file for ex in all_examples() if ex.file is not None}
    on_disk = {
        str(p.relative_to(CONTRACT_DIR)) for p in (CONTRACT_DIR / "examples").rglob("*.json")
    }
    assert listed == on_disk
    sources = {s["file"] for s in manifest()["sources"]}
    assert sources == {
        "dispatching.yml",
        "enrollments.yml",
        "events-asyncapi.yml",
        METERS,
        "webhooks.yml",
    }
    assert all(len(s["sha256"]) == 64 for s in manifest()["sources"])


def test_every_example_schema_pointer_resolves() -> None:
    for ex in all_examples():
        if ex.schema is None:
            continue
        node: Any = document(ex.source)
        for part in ex.schema.lstrip("/").split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            node = node[int(key)] if isinstance(node, list) else node[key]
        assert isinstance(node, dict), ex.id


def test_schemas_carry_no_prose() -> None:
    for path in (CONTRACT_DIR / "schemas").glob("*.json"):
        text = path.read_text(encoding="utf-8")
        for word in ('"description":', '"summary":', '"x-enum-varnames"', '"example":'):
            assert word not in text, (path.name, word)


# ---- Meter Details and Meter Enrollment responses ------------------------------------------

METER_RECORDS = with_schema(METERS, "MeterDetailsResponse") + with_schema(METERS, "ReadMeter")
METER_PAGES = with_schema(METERS, "ListMeterDetailsResponse")
ENROLLMENT_RECORDS = with_schema(ENROLL, "MeterEnrollmentResponse")
ENROLLMENT_PAGES = with_schema(ENROLL, "searchMeterEnrollments_200_response")
FILTERS = with_schema(METERS, "MeterFilterRequest") + with_schema(ENROLL, "MeterFilterRequest")


def test_response_examples_are_found() -> None:
    assert len(METER_RECORDS) >= 2
    assert len(ENROLLMENT_RECORDS) >= 4  # the schema's own and Simple, Enrolled, Multiple...
    assert METER_PAGES
    assert ENROLLMENT_PAGES
    assert len(FILTERS) >= 10


def same_meter(record: LeapMeter | LeapEnrollment, raw: JSON) -> None:
    assert str(record.meter_id) == raw["meter_id"]
    assert record.partner_reference == raw.get("partner_reference")
    assert record.connection_references == raw.get("connection_references", [])
    assert record.raw == raw  # stored as Leap sent it


@pytest.mark.parametrize("ex", METER_RECORDS, ids=ids)
def test_meter_details_example_parses(ex: Example) -> None:
    raw = ex.value
    meter = LeapMeter.model_validate(raw)
    same_meter(meter, raw)
    assert meter.utility is not None
    assert meter.utility.utility_name == raw["utility"]["utility_name"]
    assert meter.utility.bill_service_agreement_number == raw["utility"].get(
        "bill_service_agreement_number"
    )
    assert meter.site is not None
    assert meter.site.load_zone == raw["site"]["load_zone"]


@pytest.mark.parametrize("ex", METER_PAGES, ids=ids)
def test_meter_page_example_parses(ex: Example) -> None:
    raw = ex.value
    page = MeterPage.model_validate(raw)
    assert len(page.meters) == len(raw["meters"])
    for meter, record in zip(page.meters, raw["meters"], strict=True):
        same_meter(meter, record)


@pytest.mark.parametrize("ex", ENROLLMENT_RECORDS, ids=ids)
def test_enrollment_example_parses(ex: Example) -> None:
    raw = ex.value
    enrollment = LeapEnrollment.model_validate(raw)
    same_meter(enrollment, raw)
    assert enrollment.global_enrollment_status == raw["global_enrollment_status"]
    periods = raw.get("program_enrollment", [])
    assert [p.delivery_period for p in enrollment.program_enrollment] == [
        p["delivery_period"] for p in periods
    ]
    assert [
        str(p.market_group_id) if p.market_group_id else None for p in enrollment.program_enrollment
    ] == [p.get("market_group_id") for p in periods]
    actions = raw.get("required_actions") or {}
    for side in ("partner", "leap"):
        assert [a.action_code for a in getattr(enrollment.required_actions, side)] == [
            a["action_code"] for a in actions.get(side) or []
        ]


@pytest.mark.parametrize("ex", ENROLLMENT_PAGES, ids=ids)
def test_enrollment_page_example_parses(ex: Example) -> None:
    raw = ex.value
    page = EnrollmentPage.model_validate(raw)
    assert len(page.meters) == len(raw["meters"])
    for enrollment, record in zip(page.meters, raw["meters"], strict=True):
        same_meter(enrollment, record)


@pytest.mark.parametrize("ex", FILTERS, ids=ids)
def test_search_request_example_is_a_valid_filter(ex: Example) -> None:
    search = MeterFilter.model_validate(ex.value)
    sent = search.to_body()
    assert set(ex.value) <= set(sent)


# ---- the fake Leap answers like Leap's examples --------------------------------------------


@pytest.fixture(scope="module")
def leap() -> Iterator[httpx.Client]:
    running: RunningSim = serve_in_thread(make_state(meters=300, groups=6, seed=5))
    headers = {"authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=30) as client:
        yield client
    running.stop()


@pytest.mark.parametrize("ex", FILTERS, ids=ids)
def test_fake_leap_takes_leaps_search_examples(leap: httpx.Client, ex: Example) -> None:
    path = "/v2/meters/search" if ex.source == METERS else "/v2/meters/enrollments/search"
    response = leap.post(path, json=ex.value)
    if "page_token" in ex.value:  # a placeholder, not a token Leap gave
        assert response.status_code == 400, response.text
        assert errors(ex.source, "ErrorResponse", response.json()) == []
        return
    assert response.status_code == 200, response.text
    schema = (
        "ListMeterDetailsResponse"
        if ex.source == METERS
        else ("searchMeterEnrollments_200_response")
    )
    assert errors(ex.source, schema, response.json()) == []


def keys_of(records: list[JSON]) -> set[str]:
    return {key for record in records for key in record}


@pytest.mark.parametrize(
    ("source", "examples_of", "path"),
    [
        (METERS, METER_RECORDS, "/v2/meters/{}"),
        (ENROLL, ENROLLMENT_RECORDS, "/v2/meters/{}/enrollments"),
    ],
    ids=["meter-details", "enrollment"],
)
def test_fake_leap_records_have_the_fields_of_leaps_examples(
    leap: httpx.Client, source: str, examples_of: list[Example], path: str
) -> None:
    """Every top-level field Leap's examples show, the fake shows on some meter."""
    page = leap.post("/v2/meters/search", json={"page_size": 500}).json()
    served = [leap.get(path.format(m["meter_id"])).json() for m in page["meters"]]
    expected = keys_of([ex.value for ex in examples_of])
    missing = expected - keys_of(served)
    assert missing == set(), sorted(missing)


def test_fake_leap_error_bodies_have_leaps_example_keys(leap: httpx.Client) -> None:
    error_examples = [
        ex
        for ex in examples(METERS) + examples(ENROLL)
        if ex.entry.get("status") in {"400", "404"} and ex.file is not None
    ]
    assert error_examples
    not_found = leap.get("/v2/meters/f5c5e328-e325-4d6d-b357-5015ed5962a7").json()
    bad = leap.get("/v2/meters/abcdef").json()
    for ex in error_examples:
        served = not_found if ex.entry["status"] == "404" else bad
        assert set(served) == set(ex.value), ex.id


# ---- dispatch notifications ---------------------------------------------------------------

DISPATCH_OBJECTS = [ex for ex in examples(DISPATCH) if ex.file is not None and ex.schema]
# Leap's examples send null where its schema says number or array: these are read as
# "not given" (energy_kw null: as much as the meter can), so null is allowed there only.
NULL_BY_PRACTICE = {"energy_kw", "market_group_event_ids"}


def dispatch_validator(schema: str) -> Any:
    registry: Registry[Any] = Registry().with_resource(
        "urn:leap:dispatching.yml",
        Resource.from_contents(document(DISPATCH), default_specification=DRAFT4),
    )
    ref = {"$ref": f"urn:leap:dispatching.yml#{schema}"}
    return Draft4Validator(ref, registry=registry, format_checker=FORMATS)


def test_dispatch_examples_are_found() -> None:
    names = {Path(ex.file or "").stem for ex in DISPATCH_OBJECTS}
    assert sum(1 for n in names if "integration_test" in n) >= 20
    assert any("SearchGroupDispatchEventResponse" in n for n in names)


@pytest.mark.parametrize("ex", DISPATCH_OBJECTS, ids=ids)
def test_dispatch_example_validates(ex: Example) -> None:
    assert ex.schema is not None
    value = json.loads(json.dumps(ex.value))
    problems = [
        e
        for e in dispatch_validator(ex.schema).iter_errors(value)
        if not (e.instance is None and e.absolute_path and e.absolute_path[-1] in NULL_BY_PRACTICE)
    ]
    assert [f"{list(e.absolute_path)}: {e.message}" for e in problems] == []
