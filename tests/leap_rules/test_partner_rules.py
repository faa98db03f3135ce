"""The partner_reference key as Leap uses it: any characters stored as sent, connect
refIds that list the meters they authorized (Leap's `connection_references`), and an
authorization that stays COMPLETED once it was.

REST names chosen here (SPEC does not fix them; the implementation follows these):
- `GET /v1/partner-references/{ref}` → `meters[].linked_by`: a sorted list of how the
  meter is attached to that reference: `"partner_reference"` (the meter's own reference)
  and/or `"connection_reference"` (the reference is in the meter's Leap
  `connection_references`). A meter linked both ways is listed once.
- `GET /v1/partner-references/{ref}` → `authorization_completed_at`: when an
  authorization for this reference first COMPLETED (null until then); a later
  INITIATED or FAILED does not clear it, a later COMPLETED does not move it.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.leap_rules import leap_examples as leap
from tests.leap_rules.rest import get, send
from tests.support import events

NY_METER = "11111111-1111-1111-1111-111111111111"  # Leap's enrollment search example
METER = "2fa85f64-5717-4562-b3fc-2c963f66afa6"  # Leap's "multiple enrollments" example


def _linked(partner: dict[str, object], meter: str) -> list[list[str]]:
    meters = partner["meters"]
    assert isinstance(meters, list)
    return [sorted(m["linked_by"]) for m in meters if m["meter_id"] == meter]


async def test_connection_references_listed_on_authorizing_reference(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # The authorization chain: a Connect session under refId `test_jae`, its utility
    # authorization COMPLETED, then the meter it produced, whose own partner_reference
    # differs and whose Leap record lists `test_jae` in connection_references.
    for status in ("CREATED", "COMPLETED"):
        await send(client, events.connect_session("test_jae", status))
    await send(client, events.authorization("test_jae", "COMPLETED", "CONED"))
    await send(client, events.meter_created(NY_METER, "test_meter", region="NYISO"))
    example = leap.ExampleLeap(
        meters=[
            leap.meter_details(NY_METER, "test_meter", "NYISO", connection_references=["test_jae"])
        ],
        enrollments=[
            leap.enrollment(
                NY_METER,
                [],
                partner_reference="test_meter",
                region="NYISO",
                connection_references=["test_jae"],
            )
        ],
    )
    assert (await leap.reconcile(engine, example)).status == "succeeded"
    authorizing = await get(client, "/v1/partner-references/test_jae")
    assert _linked(authorizing, NY_METER) == [["connection_reference"]]
    assert authorizing["authorization_status"] == "COMPLETED"
    own = await get(client, "/v1/partner-references/test_meter")
    assert _linked(own, NY_METER) == [["partner_reference"]]


async def test_reference_linked_both_ways_lists_meter_once(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # Leap's "multiple enrollments" example: partner_reference and connection reference
    # are the same string.
    example = leap.ExampleLeap(
        meters=[leap.meter_details(METER, "ref-id-0102", connection_references=["ref-id-0102"])],
        enrollments=[
            leap.enrollment(
                METER, [], partner_reference="ref-id-0102", connection_references=["ref-id-0102"]
            )
        ],
    )
    assert (await leap.reconcile(engine, example)).status == "succeeded"
    partner = await get(client, "/v1/partner-references/ref-id-0102")
    assert _linked(partner, METER) == [["connection_reference", "partner_reference"]]


async def test_late_initiated_keeps_first_completed(client: httpx.AsyncClient) -> None:
    reference = "customer-site-123"
    await send(client, events.authorization(reference, "COMPLETED"))
    first = await get(client, f"/v1/partner-references/{reference}")
    completed_at = first["authorization_completed_at"]
    assert completed_at is not None
    # Connect events carry no timestamp: an INITIATED that arrives late must not hide
    # the completed authorization, and a second COMPLETED does not move the first.
    await send(client, events.authorization(reference, "INITIATED"))
    await send(client, events.authorization(reference, "COMPLETED"))
    await send(client, events.authorization(reference, "INITIATED"))
    later = await get(client, f"/v1/partner-references/{reference}")
    assert later["authorization_completed_at"] == completed_at
    assert [h["status"] for h in later["history"] if h["kind"] == "authorization"] == [
        "COMPLETED",
        "INITIATED",
        "COMPLETED",
        "INITIATED",
    ]


ODD_REFERENCES = [
    pytest.param("ab", id="shorter-than-leap-input-minimum"),
    pytest.param("x" * 300, id="longer-than-leap-input-maximum"),
    pytest.param("acct#42?(site)&a|b!", id="characters-leap-input-refuses"),
    pytest.param("{braces}[brackets]<angle>^%$*", id="brackets"),
    pytest.param("\u00e9cole-Z\u00fcrich \u2713", id="non-ascii"),
    pytest.param("site/with/slashes", id="slashes"),
]


@pytest.mark.parametrize("reference", ODD_REFERENCES)
async def test_partner_reference_any_characters_stored(
    client: httpx.AsyncClient, reference: str
) -> None:
    meter = str(uuid.uuid4())
    await send(client, events.meter_created(meter, reference))
    assert (await get(client, f"/v1/meters/{meter}"))["partner_reference"] == reference
    await send(client, events.connect_session(reference, "CREATED"))
    if len(reference) <= 256:
        listed = await get(client, f"/v1/meters?partner_reference={quote(reference, safe='')}")
        assert [m["meter_id"] for m in listed["items"]] == [meter]
    if "/" not in reference:
        partner = await get(client, f"/v1/partner-references/{quote(reference, safe='')}")
        assert partner["partner_reference"] == reference
        assert partner["connect_session_status"] == "CREATED"
        assert [m["meter_id"] for m in partner["meters"]] == [meter]
