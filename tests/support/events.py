"""Builders for Leap webhook deliveries, from the facts of Leap's event definitions."""

from __future__ import annotations

import json
import uuid
from typing import Any

CAISO_METER = "11111111-1111-1111-1111-111111111111"


def envelope(payload: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {"webhook_event_id": event_id or str(uuid.uuid4()), "payload": payload}


def body(payload: dict[str, Any], event_id: str | None = None) -> bytes:
    return json.dumps(envelope(payload, event_id)).encode()


def meter_created(
    meter_id: str = CAISO_METER,
    partner_reference: str | None = "customer-site-123",
    region: str = "CAISO",
    meter_type: str | None = "UTILITY_METER",
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "webhook_event_type": "meter.created",
        "meter_id": meter_id,
        "transmission_region": region,
    }
    if partner_reference is not None:
        payload["partner_reference"] = partner_reference
    if meter_type is not None:
        payload["meter_type"] = meter_type
    return payload


def global_status(
    meter_id: str = CAISO_METER, status: str = "ELIGIBLE", region: str = "CAISO", **extra: Any
) -> dict[str, Any]:
    return {
        "webhook_event_type": "meter.enrollment.global-status.updated",
        "meter_id": meter_id,
        "transmission_region": region,
        "global_enrollment_status": status,
        **extra,
    }


def participation(
    meter_id: str = CAISO_METER,
    preference: str = "IDLE",
    start: str = "2024-11-01T07:00:00Z",
    end: str | None = "2024-12-01T08:00:00Z",
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "webhook_event_type": "meter.enrollment.participation-status.updated",
        "meter_id": meter_id,
        "transmission_region": "CAISO",
        "participation_preference": preference,
        "start_time": start,
    }
    if end is not None:
        payload["end_time"] = end
    return payload


def required_actions(
    meter_id: str = CAISO_METER, actions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "webhook_event_type": "meter.enrollment.required-actions.updated",
        "meter_id": meter_id,
        "transmission_region": "CAISO",
        "global_enrollment_status": "PENDING",
        "required_actions": {"partner": actions if actions is not None else [authorize_action()]},
    }


def authorize_action() -> dict[str, Any]:
    return {
        "program_identifier": "CEC-DSGS",
        "delivery_period": "CEC-DSGS_2025_AUG_OCT",
        "enrollment_deadline_date_time": "2024-07-29T00:00:00.000Z",
        "action_type": "IS_AUTHORIZED",
        "action_description": "There are missing fields: fieldname",
        "action_code": "AUTH_0001",
    }


def group_updated(
    meter_ids: list[str],
    group_id: str = "406720c2-0175-4137-9ff1-1641702292d4",
    name: str = "PGSB_1_PDRP68",
    start: str = "2024-10-01T07:00:00Z",
    end: str = "2024-10-31T07:00:00Z",
) -> dict[str, Any]:
    return {
        "webhook_event_type": "meter.enrollment.group.updated",
        "market_group_id": group_id,
        "market_group_name": name,
        "start_date_time": start,
        "end_date_time": end,
        "meter_ids": meter_ids,
    }


def connect_session(
    reference: str = "customer-site-123", status: str = "CREATED"
) -> dict[str, Any]:
    return {
        "webhook_event_type": "connect_session.updated",
        "partner_reference": reference,
        "status": status,
    }


def authorization(
    reference: str = "customer-site-123", status: str = "INITIATED", utility: str = "PGE"
) -> dict[str, Any]:
    return {
        "webhook_event_type": "connect_session.authorization_updated",
        "partner_reference": reference,
        "utility_name": utility,
        "status": status,
    }
