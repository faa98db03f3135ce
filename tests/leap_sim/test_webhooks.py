"""`/v1.1/webhooks` subscriptions and delivery of emitted events over HTTP."""

from __future__ import annotations

import httpx

from app.leap_sim.server import RunningSim
from tests.support.sim import Receiver

NOT_FOUND = {"error": "Not Found", "message": "The specified resource was not found"}


def test_subscription_crud(api: httpx.Client, receiver: Receiver) -> None:
    body = {"event_types": ["meter.created"], "receiver_url": receiver.url}
    webhook_id = api.post("/v1.1/webhooks", json=body).json()["webhook_id"]
    listed = api.get("/v1.1/webhooks").json()["webhooks"]
    assert {"webhook_id": webhook_id, "headers": [], **body} in listed

    update = {
        "event_types": ["meter.enrollment.group.updated", "meter.created"],
        "receiver_url": receiver.url + "?v=2",
        "headers": [{"name": "x-secret", "value": "s3"}],
    }
    assert api.put(f"/v1.1/webhooks/{webhook_id}", json=update).json() == {"webhook_id": webhook_id}
    listed = api.get("/v1.1/webhooks").json()["webhooks"]
    assert {"webhook_id": webhook_id, **update} in listed

    deleted = api.delete(f"/v1.1/webhooks/{webhook_id}")
    assert deleted.json() == {"message": "Operation completed successfully"}
    assert webhook_id not in [w["webhook_id"] for w in api.get("/v1.1/webhooks").json()["webhooks"]]
    for response in (
        api.delete(f"/v1.1/webhooks/{webhook_id}"),
        api.put(f"/v1.1/webhooks/{webhook_id}", json=update),
        api.post(f"/v1.1/webhooks/{webhook_id}/test", json={"webhook_event_type": "meter.created"}),
    ):
        assert response.status_code == 404
        assert response.json() == NOT_FOUND


def test_bad_subscription_is_rejected(api: httpx.Client) -> None:
    response = api.post(
        "/v1.1/webhooks", json={"event_types": ["meter.exploded"], "receiver_url": "x"}
    )
    assert response.status_code == 400
    assert set(response.json()) == {"error", "message"}


def test_test_endpoint_reports_the_receivers_answer(api: httpx.Client, receiver: Receiver) -> None:
    receiver.reset()
    body = {
        "event_types": ["meter.created"],
        "receiver_url": receiver.url,
        "headers": [{"name": "x-api-key", "value": "k1"}],
    }
    webhook_id = api.post("/v1.1/webhooks", json=body).json()["webhook_id"]
    sample = {
        "webhook_event_type": "meter.created",
        "meter_id": "364be407-1f08-48fa-afd2-ee1dd228b76b",
        "partner_reference": "sample-ref-123",
    }
    result = api.post(f"/v1.1/webhooks/{webhook_id}/test", json=sample).json()
    assert result["is_successful"] is True
    assert result["status_code"] == 202
    assert isinstance(result["response_time_ms"], int)
    assert receiver.received[-1].body["payload"] == sample
    assert receiver.received[-1].headers["x-api-key"] == "k1"

    api.put(
        f"/v1.1/webhooks/{webhook_id}", json={**body, "receiver_url": "http://127.0.0.1:9/nope"}
    )
    failed = api.post(f"/v1.1/webhooks/{webhook_id}/test", json=sample).json()
    assert failed["is_successful"] is False
    assert failed["error"]
    api.delete(f"/v1.1/webhooks/{webhook_id}")


def test_events_go_only_to_subscriptions_that_chose_them_and_are_retried(
    sim: RunningSim, api: httpx.Client, receiver: Receiver
) -> None:
    receiver.reset(fail_times=2)
    status_hook = api.post(
        "/v1.1/webhooks",
        json={
            "event_types": ["meter.enrollment.global-status.updated"],
            "receiver_url": receiver.url,
            "headers": [{"name": "x-which", "value": "status"}],
        },
    ).json()["webhook_id"]
    created_hook = api.post(
        "/v1.1/webhooks",
        json={
            "event_types": ["meter.created"],
            "receiver_url": receiver.url,
            "headers": [{"name": "x-which", "value": "created"}],
        },
    ).json()["webhook_id"]
    meter_id = sim.state.portfolio.meter_id(1)
    status_events = api.post(
        "/sim/meters/status", json={"meter_ids": [meter_id], "global_enrollment_status": "PENDING"}
    ).json()["webhook_event_ids"]
    created = api.post("/sim/meters", json={"count": 1}).json()
    assert len(status_events) == 1
    assert api.post("/sim/drain", params={"seconds": 10}).json()["drained"] is True

    by_hook: dict[str, list[str]] = {}
    for r in receiver.received:
        by_hook.setdefault(r.headers["x-which"], []).append(r.body["payload"]["webhook_event_type"])
    assert by_hook["status"] == ["meter.enrollment.global-status.updated"] * 3
    assert by_hook["created"] == ["meter.created"] * 3
    assert receiver.received[-1].body["payload"]["meter_id"] == created["meter_ids"][0]

    delivered = api.get("/sim/deliveries", params={"webhook_event_id": status_events[0]}).json()
    [record] = delivered["deliveries"]
    assert record["outcome"] == "delivered"
    assert [a["status_code"] for a in record["attempts"]] == [500, 500, 202]
    stats = api.get("/sim/stats").json()["deliveries"]
    assert stats["delivered"] >= 2
    assert stats["pending"] == 0
    for hook in (status_hook, created_hook):
        api.delete(f"/v1.1/webhooks/{hook}")
