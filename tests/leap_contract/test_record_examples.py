"""Leap's API record examples, stored as a reconciliation stores them, read back through REST.

What Leap means by them: a delivery period covers its whole last day, Leap's and the
partner's open actions are the meter's status reasons, a meter is listed under the
connect reference that authorized it, and the utility view keeps Leap's bill numbers.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.leap.models import LeapEnrollment, LeapMeter
from app.markets import DEFAULT_MARKET_TIMEZONES
from app.sync import records
from tests.leap_contract.contract import named_example, schema_example
from tests.support.http import read_auth

METERS = "meters.yml"
ENROLL = "enrollments.yml"
JSON = dict[str, Any]


async def store(
    sessions: async_sessionmaker[AsyncSession],
    meters: list[JSON] = [],  # noqa: B006  # read only
    enrollments: list[JSON] = [],  # noqa: B006  # read only
) -> None:
    async with sessions() as session:
        await records.store_meters(session, [LeapMeter.model_validate(m) for m in meters])
        await records.store_enrollments(
            session,
            [LeapEnrollment.model_validate(e) for e in enrollments],
            DEFAULT_MARKET_TIMEZONES,
        )
        await session.commit()


IDENTITY = (
    "meter_id",
    "partner_reference",
    "transmission_region",
    "customer_classification",
    "load_types",
    "meter_type",
    "connection_references",
    "customer_group",
    "tags",
    "is_archived",
    "audit",
)


def details_of(enrollment: JSON) -> JSON:
    """The Meter Details record a reconciliation fetches beside an enrollment example:
    Leap gives none for these meters, so it carries the fields both records share."""
    return {k: v for k, v in enrollment.items() if k in IDENTITY}


async def get(client: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await client.get(path, params=params, headers=read_auth())
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    return response.json()


async def test_meter_details_example_shows_in_the_meter_view(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    raw = schema_example(METERS, "MeterDetailsResponse")
    await store(sessions, meters=[raw])
    meter = await get(client, f"/v1/meters/{raw['meter_id']}")
    assert meter["partner_reference"] == raw["partner_reference"]
    assert meter["transmission_region"] == raw["transmission_region"]
    assert meter["is_archived"] is raw["is_archived"]
    assert meter["grid"] == {"iso_rto": raw["transmission_region"], "load_zone": "load-zone"}
    assert meter["utility"]["name"] == raw["utility"]["utility_name"]
    assert (
        meter["utility"]["service_account_number"]
        == (raw["utility"]["electric_service_account_number"])
    )
    assert meter["location"]["city"] == raw["customer"]["city"]


async def test_meter_details_example_keeps_leaps_bill_numbers(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    raw = schema_example(METERS, "MeterDetailsResponse")
    await store(sessions, meters=[raw])
    utility = (await get(client, f"/v1/meters/{raw['meter_id']}"))["utility"]
    for field in ("bill_service_agreement_number", "bill_customer_account_number"):
        assert utility.get(field) == raw["utility"][field], field


async def test_multiple_enrollments_example_covers_each_period_through_its_last_day(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """CAISO-CCA_2024_NOV ends `2024-11-30T08:00:00Z`, the start of its last day."""
    raw = named_example(ENROLL, "MultipleEnrollments")
    november = next(p for p in raw["program_enrollment"] if p["delivery_period"].endswith("NOV"))
    assert november["delivery_period_end_date_time"] == "2024-11-30T08:00:00Z"
    await store(sessions, enrollments=[raw])
    rows = await get(
        client,
        f"/v1/meters/{raw['meter_id']}/participation",
        **{"from": "2024-11-01", "to": "2024-12-01"},
    )
    by_date = {r["trade_date"]: r["market_group_id"] for r in rows["participation"]}
    assert by_date["2024-11-01"] == november["market_group_id"]
    assert by_date["2024-11-30"] == november["market_group_id"]
    # December's enrollments carry no market group.
    assert by_date["2024-12-01"] is None
    start = {r["trade_date"]: r["trade_date_start"] for r in rows["participation"]}
    assert start["2024-11-30"].replace("+00:00", "Z") == "2024-11-30T08:00:00Z"


async def test_multiple_enrollments_example_lists_partner_and_leap_reasons(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    raw = named_example(ENROLL, "MultipleEnrollments")
    await store(sessions, enrollments=[raw])
    view = await get(client, f"/v1/meters/{raw['meter_id']}/enrollment")
    assert view["status"] == raw["global_enrollment_status"]
    actions = raw["required_actions"]
    assert sorted(view["status_reasons"]) == sorted(
        a["action_description"] for a in actions["partner"] + actions["leap"]
    )
    assert len(view["programs"]) == len(raw["program_enrollment"])


async def test_simple_example_meter_is_listed_under_its_partner_reference(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    raw = named_example(ENROLL, "Simple")
    await store(sessions, meters=[details_of(raw)], enrollments=[raw])
    partner = await get(client, f"/v1/partner-references/{raw['partner_reference']}")
    assert [m["meter_id"] for m in partner["meters"]] == [raw["meter_id"]]


async def test_simple_example_meter_is_listed_under_the_connect_reference_that_authorized_it(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """`connection_references` name the Leap Connect refIds that produced the meter."""
    raw = named_example(ENROLL, "Simple")
    (connection_reference,) = raw["connection_references"]
    assert connection_reference != raw["partner_reference"]
    await store(sessions, meters=[details_of(raw)], enrollments=[raw])
    partner = await get(client, f"/v1/partner-references/{connection_reference}")
    assert [m["meter_id"] for m in partner["meters"]] == [raw["meter_id"]]
