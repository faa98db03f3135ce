"""Every dispatch example in Leap's dispatching.yml is accepted and applied as written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from app.leap.dispatch import GroupDispatchNotification, MeterDispatchNotification
from tests.dispatch.bodies import encode
from tests.dispatch.leap_dispatch import notification_examples, search_examples
from tests.support.http import read_auth, secret_headers

EXAMPLES = notification_examples()
FIELDS = (
    "energy_kw",
    "nomination_kw",
    "cancelled",
    "programs",
    "priority",
    "is_voluntary",
    "performance_compensation_cap",
    "dispatch_event_types",
)


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_the_examples_are_all_found() -> None:
    # 12 meter and 12 group request examples, plus the two schema-level examples.
    assert len(EXAMPLES) == 26


async def _check_applied(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    kind = "meter" if "meter_dispatches" in body else "group"
    for item in body[f"{kind}_dispatches"]:
        for slot in item["timeslots"]:
            event_id = slot["meter_event_id" if kind == "meter" else "market_group_event_id"]
            got = await client.get(f"/v1/dispatches/{event_id}?kind={kind}", headers=read_auth())
            assert got.status_code == 200
            stored = got.json()
            assert _instant(stored["start_time"]) == _instant(slot["start_time"])
            assert _instant(stored["end_time"]) == _instant(slot["end_time"])
            for name in FIELDS:
                assert stored[name] == slot[name], name
            meters = await client.get(
                f"/v1/dispatches/{event_id}/meters?kind={kind}", headers=read_auth()
            )
            listed = {m["meter_id"] for m in meters.json()["items"]}
            if kind == "group":
                assert listed == set(item["meter_ids"])
            else:
                assert item["meter_id"] in listed


@pytest.mark.parametrize(("name", "body"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
async def test_example_notification_is_accepted_and_applied(
    client: httpx.AsyncClient, name: str, body: dict[str, Any]
) -> None:
    response = await client.post(
        "/webhooks/leap/dispatch", content=encode(body), headers=secret_headers()
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    await _check_applied(client, body)


@pytest.mark.parametrize(
    ("kind", "schema", "page"), search_examples(), ids=[s for _, s, _ in search_examples()]
)
def test_search_answer_examples_parse(kind: str, schema: str, page: dict[str, Any]) -> None:
    if kind == "meter":
        meter = MeterDispatchNotification(meter_dispatches=page["results"])
        assert len(meter.meter_dispatches[0].timeslots) == 2
    else:
        group = GroupDispatchNotification(group_dispatches=page["results"])
        assert len(group.group_dispatches[0].meter_ids) == 2
