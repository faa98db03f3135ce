"""OpenAPI examples: one CAISO meter seen on 2025-08-14, its runs and events."""

from __future__ import annotations

from typing import Any

from app.openapi import NULL

METER_ID = "5b6c1f0e-8d2a-4b7e-9a51-3c9e2d7f4a10"
GROUP_ID = "406720c2-0175-4137-9ff1-1641702292d4"


def on_date(day: str, start: str) -> dict[str, Any]:
    return {
        "trade_date": day,
        "trade_date_start": start,
        "market_group_id": GROUP_ID,
        "market_group_name": "PGSB_1_PDRP68",
    }


METER: dict[str, Any] = {
    "meter_id": METER_ID,
    "partner_reference": "acme-site-0042",
    "transmission_region": "CAISO",
    "meter_type": "UTILITY_METER",
    "is_archived": False,
    "grid": {"iso_rto": "CAISO", "load_zone": "SLAP_PGSB"},
    "utility": {
        "name": "PGE",
        "load_serving_entity": "PGE",
        "service_account_number": "4417203958-1",
        "tariff": "E-TOU-C",
        "voltage": "< 600 V",
        "meter_serial_number": "1010062391",
    },
    "location": {
        "customer_name": "Dana Whitfield",
        "company_name": NULL,
        "street_1": "1480 Alameda de las Pulgas",
        "street_2": NULL,
        "city": "Redwood City",
        "state_or_province_code": "CA",
        "postal_code": "94061",
        "country_code": "US",
    },
    "enrollment": {
        "status": "ACTIVE",
        "active_from": "2025-08-01T07:00:00Z",
        "active_to": "2025-10-31T07:00:00Z",
        "open_required_actions": 0,
    },
    "group_today": on_date("2025-08-14", "2025-08-14T07:00:00Z"),
    "details_source": "api",
    "first_seen_at": "2025-06-03T17:22:41.512Z",
    "last_seen_at": "2025-08-14T09:05:12.004Z",
    "updated_at": "2025-08-14T09:05:12.004Z",
    "leap_updated_at": "2025-08-13T22:10:07.000Z",
}

PROGRAM: dict[str, Any] = {
    "program_identifier": "CEC-DSGS",
    "delivery_period": "CEC-DSGS_2025_AUG_OCT",
    "delivery_period_start_date_time": "2025-08-01T07:00:00.000Z",
    "delivery_period_end_date_time": "2025-10-31T07:00:00.000Z",
    "enrollment_status": "ACTIVE",
    "market_group_id": GROUP_ID,
    "market_group_name": "PGSB_1_PDRP68",
}

ENROLLMENT: dict[str, Any] = {
    "meter_id": METER_ID,
    "status": "ACTIVE",
    "active_from": "2025-08-01T07:00:00Z",
    "active_to": "2025-10-31T07:00:00Z",
    "eligible_from": "2025-08-01T07:00:00Z",
    "eligible_to": "2025-10-31T07:00:00Z",
    "status_reasons": [],
    "programs": [PROGRAM],
    "participation_preferences": [
        {
            "participation_preference": "PARTICIPATE",
            "start_time": "2025-08-01T07:00:00Z",
            "end_time": NULL,
        }
    ],
    "required_actions": {"partner": [], "leap": []},
    "updated_at": "2025-08-14T09:05:12.004Z",
}

PARTICIPATION: dict[str, Any] = {
    "meter_id": METER_ID,
    "transmission_region": "CAISO",
    "time_zone": "America/Los_Angeles",
    "participation": [
        on_date("2025-10-30", "2025-10-30T07:00:00Z"),
        on_date("2025-10-31", "2025-10-31T07:00:00Z"),
        {
            "trade_date": "2025-11-01",
            "trade_date_start": "2025-11-01T07:00:00Z",
            "market_group_id": NULL,
            "market_group_name": NULL,
        },
    ],
}

SUMMARY: dict[str, Any] = {
    "meter_id": METER_ID,
    "partner_reference": "acme-site-0042",
    "transmission_region": "CAISO",
    "meter_type": "UTILITY_METER",
    "utility_name": "PGE",
    "load_zone": "SLAP_PGSB",
    "enrollment_status": "ACTIVE",
    "is_archived": False,
    "updated_at": "2025-08-14T09:05:12.004Z",
}

PAGE: dict[str, Any] = {
    "items": [
        SUMMARY,
        {
            **SUMMARY,
            "meter_id": "5b6c2a41-03d9-4f2c-8e77-0b4d1e9c6f25",
            "partner_reference": "acme-site-0043",
            "enrollment_status": "PENDING",
            "updated_at": "2025-08-12T16:40:03.218Z",
        },
    ],
    "next_cursor": "AVtsKkED2U8sjncLTR6cbyU",
}


# ---- sync and the event log (set on the routes, so the models stay plain) -------------

RUN: dict[str, Any] = {
    "id": 118,
    "mode": "delta",
    "status": "succeeded",
    "trigger": "schedule",
    "phase": "done",
    "requested_at": "2025-08-14T09:00:00.104Z",
    "started_at": "2025-08-14T09:00:00.391Z",
    "finished_at": "2025-08-14T09:00:07.842Z",
    "pages": 3,
    "meters": 1204,
    "errors": 0,
    "error": NULL,
}

SYNC_STATUS: dict[str, Any] = {
    "mode": "api",
    "detail": "reconciling with Leap's API",
    "last_event_received_at": "2025-08-14T09:12:03.512Z",
    "seconds_since_last_event": 41.7,
    "last_run": RUN,
    "last_full_run": {**RUN, "id": 112, "mode": "full", "trigger": "schedule", "pages": 37},
    "lag_seconds": 765.2,
    "queued_jobs": 0,
    "failed_events": 1,
    "dead_events": 2,
}

EVENT_PAGE: dict[str, Any] = {
    "items": [
        {
            "webhook_event_id": "0f8e6d4c-2b1a-4c3d-9e8f-7a6b5c4d3e2f",
            "event_type": "meter.enrollment.global-status.updated",
            "status": "dead",
            "error": "payload.global_enrollment_status: Input should be 'ACTIVE', ...",
            "attempts": 1,
            "meter_id": METER_ID,
            "partner_reference": "acme-site-0042",
            "duplicate_deliveries": 0,
            "conflicting_deliveries": 0,
            "received_at": "2025-08-14T09:12:03.512Z",
            "applied_at": NULL,
        }
    ],
    "next_cursor": "10442",
}


def example_response(status: int, example: Any) -> dict[int | str, dict[str, Any]]:
    """A route's `responses` entry showing `example` for a JSON answer."""
    return {status: {"content": {"application/json": {"example": example}}}}
