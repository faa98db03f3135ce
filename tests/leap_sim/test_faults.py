"""Fault injection on the v2 endpoints: 429 with Retry-After, 5xx, drops, latency."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.leap_sim.server import RunningSim, serve_in_thread
from tests.support.sim import API_KEY, make_state


@pytest.fixture(scope="module")
def faulty() -> Iterator[tuple[RunningSim, httpx.Client]]:
    running = serve_in_thread(make_state(meters=300, groups=8))
    headers = {"authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=10) as client:
        yield running, client
    running.stop()


def _set(client: httpx.Client, **config: object) -> None:
    response = client.put("/sim/faults", json=config)
    assert response.status_code == 200, response.text


def _calls(running: RunningSim, client: httpx.Client) -> list[httpx.Response]:
    meter_id = running.state.portfolio.meter_id(3)
    return [
        client.get(f"/v2/meters/{meter_id}"),
        client.get(f"/v2/meters/{meter_id}/enrollments"),
        client.post("/v2/meters/search", json={"page_size": 5}),
        client.post("/v2/meters/enrollments/search", json={}),
    ]


def test_429_everywhere_with_retry_after(faulty: tuple[RunningSim, httpx.Client]) -> None:
    running, client = faulty
    _set(client, rate_429=1.0, retry_after_seconds=7)
    for response in [r for _ in range(3) for r in _calls(running, client)]:
        assert response.status_code == 429
        assert response.headers["retry-after"] == "7"
        assert response.json()["status"] == 429
    assert client.get("/v1.1/webhooks").status_code == 200  # only v2 is affected
    assert client.get("/sim/faults").json()["injected"]["429"] == 12
    _set(client)
    assert all(r.status_code == 200 for r in _calls(running, client))


def test_5xx(faulty: tuple[RunningSim, httpx.Client]) -> None:
    running, client = faulty
    _set(client, rate_5xx=1.0, status_5xx=502)
    assert {r.status_code for r in _calls(running, client)} == {502}
    _set(client)


def test_dropped_connections(faulty: tuple[RunningSim, httpx.Client]) -> None:
    running, client = faulty
    _set(client, rate_drop=1.0)
    meter_id = running.state.portfolio.meter_id(3)
    for _ in range(3):
        with pytest.raises(httpx.TransportError):
            client.get(f"/v2/meters/{meter_id}")
    _set(client)
    assert client.get(f"/v2/meters/{meter_id}").status_code == 200


def test_latency(faulty: tuple[RunningSim, httpx.Client]) -> None:
    running, client = faulty
    _set(client, latency_rate=1.0, latency_ms=150)
    delayed = running.state.faults.counts["latency"]
    assert client.post("/v2/meters/search", json={"page_size": 1}).status_code == 200
    # The injector says it held the request; the clock is not asked (it depends on load).
    assert running.state.faults.counts["latency"] == delayed + 1
    _set(client)


def test_rates_are_seeded(faulty: tuple[RunningSim, httpx.Client]) -> None:
    _running, client = faulty

    def run() -> list[int]:
        _set(client, rate_429=0.3, rate_5xx=0.3, seed=42)
        return [
            client.post("/v2/meters/search", json={"page_size": 1}).status_code for _ in range(30)
        ]

    first, second = run(), run()
    assert first == second
    assert {200, 429, 503} <= set(first)
    _set(client)
