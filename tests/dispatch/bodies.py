"""Dispatch notification bodies for tests, shaped like Leap's examples."""

from __future__ import annotations

import json
import uuid
from typing import Any

JSON = dict[str, Any]


def timeslot(id_key: str, event_id: uuid.UUID | str, **fields: Any) -> JSON:
    slot: JSON = {
        id_key: str(event_id),
        "start_time": "2026-07-21T00:00:00.000Z",
        "end_time": "2026-07-21T01:00:00.000Z",
        "energy_kw": 100,
        "nomination_kw": 100,
        "cancelled": False,
        "programs": ["CCA"],
        "priority": 1,
        "is_voluntary": False,
        "performance_compensation_cap": "up-to-site-load",
        "dispatch_event_types": ["day-ahead"],
    }
    slot.update(fields)
    return slot


def group_body(
    group_id: uuid.UUID | str,
    meter_ids: list[uuid.UUID] | list[str],
    slots: list[JSON],
    **top: Any,
) -> JSON:
    return {
        **top,
        "group_dispatches": [
            {
                "market_group_id": str(group_id),
                "meter_ids": [str(m) for m in meter_ids],
                "timeslots": slots,
            }
        ],
    }


def meter_body(meter_id: uuid.UUID | str, slots: list[JSON], **top: Any) -> JSON:
    return {**top, "meter_dispatches": [{"meter_id": str(meter_id), "timeslots": slots}]}


def encode(body: JSON) -> bytes:
    return json.dumps(body).encode()
