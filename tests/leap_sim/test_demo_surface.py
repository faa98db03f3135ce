"""The fake Leap as a demo user meets it: a start banner with its endpoints and key, its
control API documented at its own /docs, event ids in every control answer, and the same
portfolio after a restart with the same seed."""

from __future__ import annotations

import httpx

from app.leap_sim.portfolio import Portfolio
from app.leap_sim.server import RunningSim, start_banner
from tests.support.sim import API_KEY, Receiver


def test_a_restart_keeps_every_generated_meter_and_never_reuses_an_added_id() -> None:
    before = Portfolio(200, 4, seed=7)
    after = Portfolio(200, 4, seed=7)  # the same seed, as after a restart
    for index in range(200):
        assert after.meter_id(index) == before.meter_id(index)
        old, new = before.core(index), after.core(index)
        assert old is not None
        assert new is not None
        assert new.partner_reference == old.partner_reference
    added_before = before.meter_id(before.add_meter(partner_reference="first-run-ref"))
    added_after = after.meter_id(after.add_meter(partner_reference="second-run-ref"))
    # An id handed out before the restart is unknown afterwards (Leap no longer has it),
    # never another meter with another reference.
    assert added_after != added_before
    assert after.index_of(added_before) is None
    assert before.index_of(added_before) == 200
    assert after.index_of(added_after) == 200
    # Another seed is another portfolio.
    assert Portfolio(200, 4, seed=8).meter_id(0) != before.meter_id(0)


def test_control_answers_carry_the_webhook_event_ids_sent(
    sim: RunningSim, api: httpx.Client, receiver: Receiver
) -> None:
    subscription = {"event_types": ["meter.created"], "receiver_url": receiver.url}
    webhook_id = api.post("/v1.1/webhooks", json=subscription).json()["webhook_id"]
    added = api.post("/sim/meters", json={"count": 2}).json()
    assert len(added["meter_ids"]) == 2
    assert len(added["webhook_event_ids"]) == 2
    sent = {e["webhook_event_id"]: e for e in api.get("/sim/events").json()["events"]}
    for event_id, meter_id in zip(added["webhook_event_ids"], added["meter_ids"], strict=True):
        assert sent[event_id]["payload"]["webhook_event_type"] == "meter.created"
        assert sent[event_id]["payload"]["meter_id"] == meter_id
    # Leap sends nothing for archival: the answer says so with an empty list.
    archived = api.post("/sim/meters/archive", json={"meter_ids": added["meter_ids"][:1]})
    assert archived.json() == {"meter_ids": added["meter_ids"][:1], "webhook_event_ids": []}
    assert api.post("/sim/drain", params={"seconds": 10}).json()["drained"] is True
    api.delete(f"/v1.1/webhooks/{webhook_id}")


def test_the_control_api_is_documented_at_the_fake_leaps_docs(sim: RunningSim) -> None:
    with httpx.Client(base_url=sim.url, timeout=30) as anonymous:
        page = anonymous.get("/docs")
        assert page.status_code == 200
        assert "cdn" not in page.text.lower()
        document = anonymous.get("/openapi.json").json()
        assert anonymous.get("/sim/stats").status_code == 401
    sim_routes = {
        (method, path): op
        for path, ops in document["paths"].items()
        if path.startswith("/sim/")
        for method, op in ops.items()
    }
    assert len(sim_routes) >= 19
    for (method, path), op in sim_routes.items():
        assert op.get("summary"), f"{method} {path}"
        assert op.get("description"), f"{method} {path}"
        assert op.get("security"), f"{method} {path}: Authorize is offered"
    assert "LEAP_SIM_API_KEY" in document["info"]["description"]


def test_the_start_banner_names_the_endpoints_and_the_key(sim: RunningSim) -> None:
    text = "\n".join(start_banner(sim.state, "0.0.0.0", 8911, "http://api:8000/webhooks/leap"))  # noqa: S104
    assert "fake Leap on http://127.0.0.1:8911" in text
    assert f"API key        {API_KEY}" in text
    assert "http://127.0.0.1:8911/docs" in text
    assert "http://127.0.0.1:8911/v2/meters/search" in text
    assert "sending to     http://api:8000/webhooks/leap" in text
    assert f"LEAP_API_BASE_URL=http://127.0.0.1:8911 LEAP_API_KEY={API_KEY}" in text
