"""LeapClient and the Leap v2 models: unit tests on httpx.MockTransport, then the real
client against the fake Leap (app.leap_sim) over HTTP, with and without injected faults."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.leap.client import (
    LeapAuthError,
    LeapClient,
    LeapError,
    LeapRequestError,
    LeapResponseError,
    LeapUnavailable,
    backoff_delay,
    parse_retry_after,
)
from app.leap.models import (
    EnrollmentPage,
    LeapEnrollment,
    LeapMeter,
    MeterFilter,
    parse_leap_datetime,
)
from app.leap_sim.faults import FaultConfig
from app.leap_sim.server import RunningSim, build_state, serve_in_thread

KEY = "unit-test-key"
BASE = "https://leap.test"
METER_ID = "11111111-1111-1111-1111-111111111111"

Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


def meter_json(meter_id: str = METER_ID, **extra: Any) -> dict[str, Any]:
    return {
        "meter_id": meter_id,
        "partner_reference": "ref-001",
        "transmission_region": "CAISO",
        "meter_type": "UTILITY_METER",
        "is_archived": False,
        "utility": {"utility_name": "PGE"},
        "site": {"load_zone": "PGAE"},
        "audit": {
            "created_by": "PARTNER",
            "created_at": "2024-04-24T16:03:06.785318Z",
            "updated_at": "2024-10-21T11:43:05.892Z",
        },
        **extra,
    }


def enrollment_json(meter_id: str = METER_ID) -> dict[str, Any]:
    return {
        "meter_id": meter_id,
        "partner_reference": "ref-001",
        "transmission_region": "CAISO",
        "is_archived": False,
        "load_types": ["HVAC"],
        "tags": [],
        "audit": {
            "created_at": "2000-01-23T04:56:07.000+00:00",
            "updated_at": "2024-10-12T08:31:53.956Z",
        },
        "global_enrollment_status": "ACTIVE",
        "participation_preferences": [
            {
                "participation_preference": "PARTICIPATE",
                "start_time": "2024-04-24T16:03:06Z",
                "end_time": "9000-12-31T23:59:59.999999999Z",
            }
        ],
        "program_enrollment": [
            {
                "program_identifier": "CCA",
                "delivery_period": "CAISO-CCA_2024_OCT",
                "delivery_period_start_date_time": "2024-10-01T07:00:00Z",
                "delivery_period_end_date_time": "2024-10-31T07:00:00Z",
                "enrollment_status": "ACTIVE",
                "enrollment_deadlines": [],
                "market_group_id": "406720c2-0175-4137-9ff1-1641702292d4",
                "market_group_name": "PGSB_1_PDRP68",
            }
        ],
        "required_actions": {
            "partner": [
                {
                    "program_identifier": "CCA",
                    "delivery_period": "CAISO-CCA_2024_NOV",
                    "enrollment_deadline_date_time": "2024-11-01T07:00:00Z",
                    "action_type": "IS_AUTHORIZED",
                    "action_description": "End customer must re-authorize meter.",
                    "action_code": "AUTH_0001",
                }
            ],
            "leap": [],
        },
    }


class Recorder:
    """Fake sleep and on_call hook that remember what they were given."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.calls: list[tuple[str, int | None, float]] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def on_call(self, endpoint: str, status: int | None, seconds: float) -> None:
        self.calls.append((endpoint, status, seconds))

    @property
    def statuses(self) -> list[int | None]:
        return [status for _, status, _ in self.calls]


def mock_client(handler: Handler, rec: Recorder, **options: Any) -> LeapClient:
    options.setdefault("rand", lambda: 0.5)
    return LeapClient(
        BASE,
        KEY,
        transport=httpx.MockTransport(handler),
        on_call=rec.on_call,
        sleep=rec.sleep,
        **options,
    )


def scripted(*answers: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering each request with the next scripted response (or raising)."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


# ---- timestamps, filter and models ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-10-21T11:43:05.892Z", datetime(2024, 10, 21, 11, 43, 5, 892000, UTC)),
        ("2000-01-23T04:56:07.000+00:00", datetime(2000, 1, 23, 4, 56, 7, tzinfo=UTC)),
        ("2024-07-12T16:40:56.401422Z", datetime(2024, 7, 12, 16, 40, 56, 401422, UTC)),
        ("9000-12-31T23:59:59.999999999Z", datetime(9000, 12, 31, 23, 59, 59, 999999, UTC)),
        ("2024-11-01T00:00:00Z", datetime(2024, 11, 1, tzinfo=UTC)),
        ("2024-11-01T02:00:00+02:00", datetime(2024, 11, 1, tzinfo=UTC)),
        ("2024-11-01T05:30:00+0530", datetime(2024, 11, 1, tzinfo=UTC)),
        ("2024-11-01T00:00:00", datetime(2024, 11, 1, tzinfo=UTC)),
    ],
)
def test_parse_leap_datetime(text: str, expected: datetime) -> None:
    parsed = parse_leap_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("bad", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-10-21", 12])
def test_parse_leap_datetime_rejects(bad: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        parse_leap_datetime(bad)


def test_meter_filter_body_and_limits() -> None:
    when = datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    f = MeterFilter(page_size=100, meter_ids=[uuid.UUID(METER_ID)], last_modified_date_time=when)
    assert f.to_body() == {
        "page_size": 100,
        "meter_ids": [METER_ID],
        "last_modified_date_time": "2024-01-01T00:00:00Z",
    }
    assert MeterFilter().to_body() == {"page_size": 500}
    assert f.with_page_token("tok").to_body()["page_token"] == "tok"
    assert f.page_token is None  # filters are immutable
    with pytest.raises(ValidationError):
        MeterFilter(page_size=501)
    with pytest.raises(ValidationError):
        MeterFilter(last_modified_date_time=datetime(2024, 1, 1))  # naive
    with pytest.raises(ValidationError):
        MeterFilter(unknown_filter=1)  # type: ignore[call-arg]


def test_models_keep_unknown_fields_and_raw() -> None:
    data = meter_json(brand_new_field={"x": [1, 2]})
    data["utility"]["new_utility_field"] = "v"
    data["audit"]["updated_at"] = "9000-12-31T23:59:59.999999999Z"
    meter = LeapMeter.model_validate(data)
    assert meter.model_extra == {"brand_new_field": {"x": [1, 2]}}
    assert meter.utility is not None
    assert meter.utility.model_extra == {"new_utility_field": "v"}
    assert meter.raw is data  # exact, nanoseconds included
    assert meter.updated_at == datetime(9000, 12, 31, 23, 59, 59, 999999, UTC)
    dumped = meter.model_dump(mode="json")
    assert dumped["brand_new_field"] == {"x": [1, 2]}
    assert dumped["utility"]["new_utility_field"] == "v"

    enrollment = LeapEnrollment.model_validate(enrollment_json())
    assert enrollment.program_enrollment[0].market_group_id == uuid.UUID(
        "406720c2-0175-4137-9ff1-1641702292d4"
    )
    assert enrollment.required_actions.partner[0].action_code == "AUTH_0001"
    assert enrollment.required_actions.leap == []
    assert enrollment.participation_preferences[0].end_time == datetime(
        9000, 12, 31, 23, 59, 59, 999999, UTC
    )
    page = EnrollmentPage.model_validate({"meters": [enrollment_json()], "next_page_token": ""})
    assert page.next_page_token is None
    assert page.meters[0].raw == enrollment_json()


# ---- backoff ---------------------------------------------------------------------------------


def test_backoff_delay_full_jitter_and_cap() -> None:
    assert backoff_delay(1, base=0.5, cap=30, rand=lambda: 1.0) == 0.5
    assert backoff_delay(3, base=0.5, cap=30, rand=lambda: 1.0) == 2.0
    assert backoff_delay(3, base=0.5, cap=30, rand=lambda: 0.0) == 0.0
    assert backoff_delay(3, base=0.5, cap=30, rand=lambda: 0.5) == 1.0
    assert backoff_delay(10, base=0.5, cap=30, rand=lambda: 1.0) == 30
    assert backoff_delay(10_000, base=0.5, cap=30, rand=lambda: 1.0) == 30
    # Retry-After is a floor, still capped
    assert backoff_delay(1, base=0.5, cap=30, retry_after=7, rand=lambda: 1.0) == 7
    assert backoff_delay(6, base=0.5, cap=30, retry_after=1, rand=lambda: 1.0) == 16
    assert backoff_delay(1, base=0.5, cap=30, retry_after=3600) == 30
    for attempt in range(1, 12):
        assert 0 <= backoff_delay(attempt, base=0.5, cap=30) <= min(30, 0.5 * 2 ** (attempt - 1))


def test_parse_retry_after() -> None:
    now = datetime(2015, 10, 21, 7, 27, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 60.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None


# ---- client on a mock transport --------------------------------------------------------------


async def test_get_meter_sends_bearer_key_and_parses() -> None:
    rec = Recorder()
    handler, seen = scripted(httpx.Response(200, json=meter_json()))
    async with mock_client(handler, rec) as leap:
        meter = await leap.get_meter(uuid.UUID(METER_ID))
    assert meter is not None
    assert str(meter.meter_id) == METER_ID
    assert meter.utility is not None
    assert meter.utility.utility_name == "PGE"
    assert seen[0].url == f"{BASE}/v2/meters/{METER_ID}"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert rec.calls[0][:2] == ("get_meter", 200)


async def test_429_honours_retry_after() -> None:
    rec = Recorder()
    handler, seen = scripted(
        httpx.Response(429, headers={"Retry-After": "7"}, json={"title": "Too Many Requests"}),
        httpx.Response(429, headers={"Retry-After": "3600"}),
        httpx.Response(200, json=enrollment_json()),
    )
    async with mock_client(handler, rec) as leap:
        enrollment = await leap.get_enrollment(METER_ID)
    assert enrollment is not None
    assert enrollment.global_enrollment_status == "ACTIVE"
    assert len(seen) == 3
    assert rec.sleeps == [7.0, 30.0]  # the second one capped at backoff_cap
    assert rec.statuses == [429, 429, 200]


async def test_5xx_timeouts_and_resets_then_success() -> None:
    rec = Recorder()
    handler, seen = scripted(
        httpx.Response(503, text="An error happened whilst processing your request"),
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.Response(502),
        httpx.Response(200, json={"meters": [meter_json()]}),
    )
    async with mock_client(handler, rec) as leap:
        page = await leap.search_meters()
    assert len(page.meters) == 1
    assert page.next_page_token is None
    assert len(seen) == 6
    assert rec.statuses == [503, None, None, None, 502, 200]
    # full jitter with rand() == 0.5: half of base * 2**(n-1)
    assert rec.sleeps == [0.25, 0.5, 1.0, 2.0, 4.0]


async def test_gives_up_after_max_attempts() -> None:
    rec = Recorder()
    handler, seen = scripted(*[httpx.Response(503) for _ in range(4)])
    async with mock_client(handler, rec, max_attempts=4) as leap:
        with pytest.raises(LeapUnavailable) as caught:
            await leap.get_meter(METER_ID)
    assert caught.value.status == 503
    assert caught.value.attempts == 4
    assert len(seen) == 4
    assert len(rec.sleeps) == 3

    rec = Recorder()
    handler, seen = scripted(*[httpx.ReadError("reset") for _ in range(3)])
    async with mock_client(handler, rec, max_attempts=3) as leap:
        with pytest.raises(LeapUnavailable) as caught:
            await leap.search_enrollments()
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, httpx.ReadError)


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_are_not_retried(status: int) -> None:
    rec = Recorder()
    body = {"title": "Unauthorized", "status": status, "details": {}}
    handler, seen = scripted(httpx.Response(status, json=body))
    async with mock_client(handler, rec) as leap:
        with pytest.raises(LeapAuthError) as caught:
            await leap.search_meters()
    assert caught.value.status == status
    assert "LEAP_API_KEY" in str(caught.value)
    assert KEY not in str(caught.value)
    assert isinstance(caught.value, LeapError)
    assert len(seen) == 1
    assert rec.sleeps == []


async def test_404_is_none_on_reads_and_an_empty_last_page_on_search() -> None:
    # Leap answers a search that finds nothing with 404 "Meter not found".
    rec = Recorder()
    not_found = {"title": "Meter not found", "status": 404, "details": {"meter_id": METER_ID}}
    handler, _ = scripted(*[httpx.Response(404, json=not_found) for _ in range(4)])
    async with mock_client(handler, rec) as leap:
        assert await leap.get_meter(METER_ID) is None
        assert await leap.get_enrollment(METER_ID) is None
        meters = await leap.search_meters()
        assert (meters.meters, meters.next_page_token) == ([], None)
        enrollments = await leap.search_enrollments()
        assert (enrollments.meters, enrollments.next_page_token) == ([], None)
    assert rec.sleeps == []


async def test_other_4xx_raise_request_error_with_leap_details() -> None:
    rec = Recorder()
    body = {"title": "Meter id is not a UUID", "status": 400, "details": {"meter_id": "abc"}}
    handler, seen = scripted(httpx.Response(400, json=body))
    async with mock_client(handler, rec) as leap:
        with pytest.raises(LeapRequestError) as caught:
            await leap.get_meter("abc")
    assert caught.value.status == 400
    assert caught.value.title == "Meter id is not a UUID"
    assert caught.value.details == {"meter_id": "abc"}
    assert len(seen) == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, json={"meters": [{"partner_reference": "no-meter-id"}]}),
        httpx.Response(200, json={"meters": [meter_json(meter_id="not-a-uuid")]}),
        httpx.Response(200, json=["not", "a", "page"]),
    ],
)
async def test_malformed_answers_raise_response_error(response: httpx.Response) -> None:
    rec = Recorder()
    handler, seen = scripted(response)
    async with mock_client(handler, rec) as leap:
        with pytest.raises(LeapResponseError):
            await leap.search_meters()
    assert len(seen) == 1


async def test_pagination_follows_tokens_and_resumes() -> None:
    pages = {
        None: ({"meters": [meter_json(str(uuid.UUID(int=1)))], "next_page_token": "t1"}),
        "t1": ({"meters": [meter_json(str(uuid.UUID(int=2)))], "next_page_token": "t2"}),
        "t2": ({"meters": [meter_json(str(uuid.UUID(int=3)))]}),
    }
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/meters/search"
        body = json.loads(request.content)
        bodies.append(body)
        return httpx.Response(200, json=pages[body.get("page_token")])

    rec = Recorder()
    f = MeterFilter(page_size=1, transmission_region="CAISO")
    async with mock_client(handler, rec) as leap:
        got = [page async for page in leap.iter_meter_pages(f)]
        assert [m.meter_id.int for p in got for m in p.meters] == [1, 2, 3]
        assert [p.next_page_token for p in got] == ["t1", "t2", None]
        assert bodies[0] == {"page_size": 1, "transmission_region": "CAISO"}
        assert bodies[1] == {"page_size": 1, "transmission_region": "CAISO", "page_token": "t1"}

        resumed = [page async for page in leap.iter_meter_pages(f.with_page_token("t1"))]
        assert [m.meter_id.int for p in resumed for m in p.meters] == [2, 3]


async def test_pagination_stops_on_a_repeated_token() -> None:
    rec = Recorder()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"meters": [], "next_page_token": "same"})

    async with mock_client(handler, rec) as leap:
        with pytest.raises(LeapResponseError, match="loop"):
            async for _ in leap.iter_enrollment_pages():
                pass
    assert len(rec.calls) == 2


async def test_concurrency_is_bounded() -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=meter_json(request.url.path.rsplit("/", 1)[1]))

    rec = Recorder()
    ids = [str(uuid.UUID(int=i)) for i in range(1, 21)]
    async with mock_client(handler, rec, max_concurrency=3) as leap:
        meters = await asyncio.gather(*(leap.get_meter(i) for i in ids))
    assert [str(m.meter_id) for m in meters if m is not None] == ids
    assert peak == 3


async def test_a_failing_on_call_hook_does_not_break_calls() -> None:
    def broken(endpoint: str, status: int | None, seconds: float) -> None:
        raise RuntimeError("metrics down")

    handler, _ = scripted(httpx.Response(200, json=meter_json()))
    transport = httpx.MockTransport(handler)
    async with LeapClient(BASE, KEY, transport=transport, on_call=broken) as leap:
        assert await leap.get_meter(METER_ID) is not None


# ---- against the fake Leap over real HTTP ----------------------------------------------------

SIM_KEY = "sim-client-test-key"
SIM_METERS = 1200


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSim]:
    running = serve_in_thread(build_state(meters=SIM_METERS, groups=8, seed=7, api_key=SIM_KEY))
    yield running
    running.stop()


def all_ids(sim: RunningSim) -> set[str]:
    return {sim.state.portfolio.meter_id(i) for i in range(SIM_METERS)}


async def test_sim_full_iteration_of_both_searches(sim: RunningSim) -> None:
    rec = Recorder()
    async with LeapClient(sim.url, SIM_KEY, on_call=rec.on_call) as leap:
        meter_ids = [
            str(m.meter_id)
            async for page in leap.iter_meter_pages(MeterFilter(page_size=100))
            for m in page.meters
        ]
        enrollment_ids = [
            str(e.meter_id)
            async for page in leap.iter_enrollment_pages(MeterFilter(page_size=250))
            for e in page.meters
        ]
        caiso = [
            m
            async for page in leap.iter_meter_pages(
                MeterFilter(transmission_region="CAISO", exclude_archived=True)
            )
            for m in page.meters
        ]
        future = await leap.search_meters(
            MeterFilter(last_modified_date_time=datetime.now(UTC) + timedelta(days=1))
        )
    assert len(meter_ids) == SIM_METERS
    assert set(meter_ids) == all_ids(sim)
    assert len(enrollment_ids) == SIM_METERS
    assert set(enrollment_ids) == all_ids(sim)
    assert Counter(endpoint for endpoint, _, _ in rec.calls)["search_meters"] >= 12 + 1
    assert caiso
    assert all(m.transmission_region == "CAISO" and not m.is_archived for m in caiso)
    assert future.meters == []
    assert future.next_page_token is None


async def test_sim_get_one_meter_and_its_enrollment(sim: RunningSim) -> None:
    portfolio = sim.state.portfolio
    meter_id = portfolio.meter_id(42)
    async with LeapClient(sim.url, SIM_KEY) as leap:
        meter = await leap.get_meter(meter_id)
        enrollment = await leap.get_enrollment(meter_id)
        missing = await leap.get_meter(uuid.uuid4())
    assert meter is not None
    assert enrollment is not None
    assert missing is None
    assert meter.raw == portfolio.meter_record(42)
    assert enrollment.raw == portfolio.enrollment_record(42)
    assert str(meter.meter_id) == str(enrollment.meter_id) == meter_id
    assert meter.utility is not None
    assert meter.utility.utility_name
    assert meter.site is not None
    assert meter.site.load_zone
    assert meter.audit is not None
    assert meter.audit.updated_at is not None
    assert meter.audit.updated_at.tzinfo is UTC
    assert enrollment.global_enrollment_status in {
        "ACTIVE", "ELIGIBLE", "INELIGIBLE", "NOT_PARTICIPATING", "PENDING"
    }  # fmt: skip
    assert enrollment.participation_preferences


async def test_sim_iteration_completes_under_heavy_faults(sim: RunningSim) -> None:
    sim.state.faults.configure(
        FaultConfig(rate_429=0.3, retry_after_seconds=0, rate_5xx=0.3, rate_drop=0.2, seed=3)
    )
    rec = Recorder()
    try:
        async with LeapClient(
            sim.url, SIM_KEY, max_attempts=40, backoff_base=0.01, backoff_cap=0.05,
            on_call=rec.on_call, max_concurrency=4,
        ) as leap:  # fmt: skip
            meter_ids = [
                str(m.meter_id)
                async for page in leap.iter_meter_pages(MeterFilter(page_size=200))
                for m in page.meters
            ]
            enrollment_ids = [
                str(e.meter_id)
                async for page in leap.iter_enrollment_pages(MeterFilter(page_size=200))
                for e in page.meters
            ]
            some = [sim.state.portfolio.meter_id(i) for i in range(0, SIM_METERS, 40)]
            fetched = await asyncio.gather(*(leap.get_enrollment(i) for i in some))
    finally:
        sim.state.faults.configure(FaultConfig())
    assert sorted(meter_ids) == sorted(all_ids(sim))
    assert sorted(enrollment_ids) == sorted(all_ids(sim))
    assert [str(e.meter_id) for e in fetched if e is not None] == some
    seen = Counter(rec.statuses)
    assert seen[429] > 0
    assert seen[503] > 0
    assert seen[None] > 0  # dropped connections
    assert seen[200] > 0


async def test_sim_wrong_key_is_an_auth_error(sim: RunningSim) -> None:
    rec = Recorder()
    async with LeapClient(sim.url, "not-the-key", on_call=rec.on_call, sleep=rec.sleep) as leap:
        with pytest.raises(LeapAuthError) as caught:
            await leap.search_meters()
    assert caught.value.status == 401
    assert rec.statuses == [401]
    assert rec.sleeps == []
