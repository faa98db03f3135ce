"""A narrow Leap built from Leap's own example records, served through httpx.MockTransport.

The records below copy the facts (names, shapes, values) of the examples in Leap's
published Meter Details v2 and Meter Enrollment v2 definitions, so a test reads what
Leap writes, not what this service expects. `reconcile()` runs the service's own
reconciliation against it and returns the finished run.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import session_factory
from app.leap.client import LeapClient
from app.models import RunMode, SyncRun
from app.sync import runs

JSON = dict[str, Any]

# Leap's v2 error body for a search that found nothing (its documented 404 example).
NOT_FOUND = {"title": "Meter not found", "status": 404, "details": {}}


def site_device(**overrides: Any) -> JSON:
    """One entry of `site.site_devices`, as in Leap's MeterDetailsResponse example."""
    device: JSON = {
        "device_type": "BATTERY",
        "model": "device-model",
        "manufacturer": "device-manufacturer",
        "serial_number": "device-serial-number",
        "energy_capacity_kwh": 39.504,
        "power_capacity_kw": 9.876,
        "energy_capacity_duration_hours": 4,
        "voltage_level": "EVSE_LEVEL_1",
        "model_year": 2020,
        "fuel_type": "DIESEL",
        "max_energy_production_rate_kw": 7.5,
        "max_energy_consumption_rate_kw": 7.5,
        "battery_max_state_of_charge_percentage": 95,
        "battery_min_state_of_charge_percentage": 10,
        "installer": "Acme Installations Inc.",
        "pv_connected": True,
    }
    device.update(overrides)
    return device


def meter_details(
    meter_id: str,
    partner_reference: str | None = "unique-reference-id-12345",
    region: str = "CAISO",
    *,
    connection_references: list[str] | None = None,
    site_devices: list[JSON] | None = None,
    updated_at: str = "2024-10-12T08:31:53.956Z",
) -> JSON:
    """A Meter Details v2 record shaped like Leap's MeterDetailsResponse example."""
    record: JSON = {
        "meter_id": meter_id,
        "transmission_region": region,
        "customer_classification": "RESIDENTIAL",
        "load_types": ["HVAC"],
        "meter_type": "UTILITY_METER",
        "connection_references": connection_references
        if connection_references is not None
        else ["connection-reference-id-1"],
        "customer_group": "customer_group",
        "tags": ["tags"],
        "is_archived": False,
        "customer": {
            "street_1": "132 My Street",
            "postal_code": "10001",
            "city": "New York",
            "state_or_province_code": "NY",
            "country_code": "US",
            "end_customer_name": "Customer Name",
            "end_customer_company_name": "Company Name Inc.",
        },
        "site": {
            "load_zone": "load-zone",
            "number_of_devices": 1,
            "site_devices": site_devices if site_devices is not None else [site_device()],
        },
        "utility": {
            "utility_name": "PGE",
            "load_serving_entity": "PGE",
            "electric_service_account_number": "12243243-121",
            "tariff": "tariff code",
            "voltage": ">= 600 V",
            "utility_meter_serial_number": "utility-meter-serial-number",
            "bill_service_agreement_number": "bill_service_agreement_number",
            "bill_customer_account_number": "bill_customer_account_number",
        },
        "audit": {
            "created_by": "PARTNER",
            "created_at": "2022-10-01T08:31:53.956Z",
            "updated_at": updated_at,
        },
    }
    if partner_reference is not None:
        record["partner_reference"] = partner_reference
    return record


def program(
    delivery_period: str,
    start: str,
    end: str,
    status: str = "ACTIVE",
    *,
    program_identifier: str = "CCA",
    market_group_id: str | None = None,
    market_group_name: str | None = None,
) -> JSON:
    """One `program_enrollment` entry. Leap writes a period's end as the start of its
    last day (CAISO-CCA_2024_OCT: 2024-10-01T07:00:00Z to 2024-10-31T07:00:00Z)."""
    entry: JSON = {
        "program_identifier": program_identifier,
        "delivery_period": delivery_period,
        "delivery_period_start_date_time": start,
        "delivery_period_end_date_time": end,
        "enrollment_status": status,
        "enrollment_deadlines": [
            {"enrollment_deadline_date_time": start, "activation_date_time": start}
        ],
    }
    if market_group_id is not None:
        entry["market_group_id"] = market_group_id
        entry["market_group_name"] = market_group_name
    return entry


def action(description: str, code: str, action_type: str, period: str) -> JSON:
    return {
        "program_identifier": period.split("_", 1)[0],
        "delivery_period": period,
        "enrollment_deadline_date_time": "2024-11-01T07:00:00Z",
        "action_type": action_type,
        "action_description": description,
        "action_code": code,
    }


# The two sides of required actions in Leap's "multiple enrollments" example.
PARTNER_REAUTHORIZE = action(
    "End customer must re-authorize meter. Learn more in our partner guide",
    "AUTH_0001",
    "IS_AUTHORIZED",
    "CAISO-CCA_2024_NOV",
)
LEAP_NOT_ENROLLED = action(
    "The meter is not enrolled in the program",
    "LEAP_0001",
    "IS_ASSIGNED_TO_A_RESOURCE",
    "CAISO-DRAM_2024_NOV",
)


def enrollment(
    meter_id: str,
    programs: list[JSON],
    *,
    partner_reference: str | None = "unique-reference-id-12345",
    region: str = "CAISO",
    status: str = "ACTIVE",
    participation: list[JSON] | None = None,
    partner_actions: list[JSON] | None = None,
    leap_actions: list[JSON] | None = None,
    connection_references: list[str] | None = None,
    updated_at: str = "2024-10-07T13:19:45.052994Z",
) -> JSON:
    """A Meter Enrollment v2 record shaped like Leap's "multiple enrollments" example."""
    record: JSON = {
        "meter_id": meter_id,
        "transmission_region": region,
        "customer_classification": "RESIDENTIAL",
        "load_types": ["EV_CHARGING"],
        "meter_type": "UTILITY_METER",
        "connection_references": connection_references or [],
        "customer_group": "",
        "tags": [],
        "is_archived": False,
        "audit": {
            "created_by": "UTILITY",
            "created_at": "2024-07-12T16:40:56.401422Z",
            "updated_at": updated_at,
        },
        "global_enrollment_status": status,
        "participation_preferences": participation
        if participation is not None
        else [
            {
                "participation_preference": "PARTICIPATE",
                "start_time": "2024-07-12T16:40:56Z",
                "end_time": "9000-01-01T00:00:00Z",
            }
        ],
        "program_enrollment": programs,
        "required_actions": {"partner": partner_actions or [], "leap": leap_actions or []},
    }
    if partner_reference is not None:
        record["partner_reference"] = partner_reference
    return record


@dataclass
class ExampleLeap:
    """Leap's four v2 read endpoints over the records given, one page per search unless
    `enrollment_pages` / `meter_pages` list the page bodies to serve in order."""

    meters: list[JSON] = field(default_factory=list)
    enrollments: list[JSON] = field(default_factory=list)
    meter_pages: list[JSON] | None = None
    enrollment_pages: list[JSON] | None = None
    search_404: set[str] = field(default_factory=set)  # "meters" and/or "enrollments"
    calls: list[str] = field(default_factory=list)

    def _page(self, kind: str, request: httpx.Request) -> httpx.Response:
        if kind in self.search_404:
            return httpx.Response(404, json=NOT_FOUND)
        pages = self.meter_pages if kind == "meters" else self.enrollment_pages
        if pages is None:
            records = self.meters if kind == "meters" else self.enrollments
            return httpx.Response(200, json={"meters": records, "next_page_token": None})
        token = json.loads(request.content or b"{}").get("page_token")
        index = int(token[1:]) if isinstance(token, str) and token.startswith("p") else 0
        return httpx.Response(200, json=pages[index])

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append(f"{request.method} {path}")
        if request.method == "POST" and path == "/v2/meters/search":
            return self._page("meters", request)
        if request.method == "POST" and path == "/v2/meters/enrollments/search":
            return self._page("enrollments", request)
        parts = path.strip("/").split("/")
        if request.method == "GET" and len(parts) >= 3 and parts[:2] == ["v2", "meters"]:
            records = self.enrollments if parts[-1] == "enrollments" else self.meters
            for record in records:
                if record["meter_id"] == parts[2]:
                    return httpx.Response(200, json=copy.deepcopy(record))
            return httpx.Response(404, json=NOT_FOUND)
        return httpx.Response(404, json={"title": "Not found", "status": 404, "details": {}})

    def client(self) -> LeapClient:
        return LeapClient(
            "https://leap.example",
            "leap-api-key",
            transport=httpx.MockTransport(self.handle),
            max_attempts=1,
        )


async def run_reconciliation(
    engine: AsyncEngine, client: LeapClient, mode: RunMode = RunMode.FULL
) -> SyncRun:
    """One reconciliation run of the service against the Leap `client` talks to."""
    sessions = session_factory(engine)
    async with sessions() as session:
        run = await runs.request_run(session, mode, "request")
        await session.commit()
        run_id = run.id
    async with client:
        return await runs.execute(sessions, client, run_id)


async def reconcile(
    engine: AsyncEngine, leap: ExampleLeap, mode: RunMode = RunMode.FULL
) -> SyncRun:
    """One reconciliation run of the service against `leap`, to its end."""
    return await run_reconciliation(engine, leap.client(), mode)
