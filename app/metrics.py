"""Prometheus metrics: `GET /metrics` (open, text format) on `serve` and on `worker`.

Two kinds of series:

- **Process counters and histograms** (deliveries, receiver latency, apply failures, Leap
  API calls, sync runs), kept in this process. When `PROMETHEUS_MULTIPROC_DIR` is set
  before start (several uvicorn worker processes), prometheus_client keeps them in files
  there and a scrape adds up every process's files (`MultiProcessCollector`).
- **Database gauges** (job queue, events not applied, last webhook, meters by enrollment
  status, last successful sync), read from PostgreSQL when scraped, with a short timeout
  and a few seconds of caching. A database that is down never fails the scrape: the
  gauges are left out and `meter_sync_metrics_database_up` is 0.

The receiver's hot path pays one counter increment and one histogram observation; the
counter's children are looked up in a plain dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from app.db import is_unavailable
from app.leap.events import KNOWN_EVENT_TYPES
from app.outage import outage
from app.response_policy import ResponsePolicyMiddleware

log = logging.getLogger("meter_sync.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DB_TIMEOUT_S = 2.0
DB_CACHE_S = 5.0

# ---- process metrics ---------------------------------------------------------------------

WEBHOOK_DELIVERIES = Counter(
    "meter_sync_webhook_deliveries",
    "Webhook deliveries by event type and outcome. type is `unknown` when the delivery was "
    "refused before its type was read, `other` for types meter-sync does not know.",
    ["type", "outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "meter_sync_webhook_receive_seconds",
    "Time the receiver took to answer a delivery (any outcome).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBHOOK_ANSWERS = Counter(
    "meter_sync_webhook_answers",
    "Every answer of the webhook receiver by HTTP status, 5xx included; 499 counts a "
    "sender that disconnected before its body was complete (no answer was sent).",
    ["status"],
)
CONFLICTING_DELIVERIES = Counter(
    "meter_sync_webhook_conflicting_deliveries",
    "Redeliveries of a stored webhook_event_id with a different body (the first is kept).",
)
APPLY_FAILURES = Counter(
    "meter_sync_webhook_apply_failures",
    "Stored events whose effects failed to apply (receiver: on receipt; retry: the worker).",
    ["source"],
)
LEAP_CALLS = Counter(
    "meter_sync_leap_api_calls",
    "HTTP attempts to Leap's API by endpoint and status (`none`: no response arrived).",
    ["endpoint", "status"],
)
LEAP_SECONDS = Histogram(
    "meter_sync_leap_api_call_seconds",
    "Duration of one HTTP attempt to Leap's API.",
    ["endpoint"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
SYNC_RUNS = Counter(
    "meter_sync_sync_runs",
    "Reconciliation runs ended by this process, by mode and outcome (succeeded | failed).",
    ["mode", "outcome"],
)
SYNC_SECONDS = Histogram(
    "meter_sync_sync_run_duration_seconds",
    "Duration of ended reconciliation runs (from their first start, across resumes).",
    ["mode"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200),
)

DISPATCH_DRIFT = Counter(
    "meter_sync_dispatch_drift",
    "Group dispatch timeslots whose meter list differed from the local roster of that group "
    "on that trade date.",
)
DISPATCH_DRIFT_METERS = Gauge(
    "meter_sync_dispatch_drift_meters",
    "Size of the last drift found (meters dispatched but not in our roster plus meters in "
    "our roster but not dispatched); 0 until a drift is found.",
    multiprocess_mode="mostrecent",
)
# Dispatch notifications are counted under their own types, not `other`.
_DISPATCH_TYPES = frozenset({"dispatch.meter", "dispatch.group"})

REFUSALS = ("unauthorized", "invalid", "too_large", "unavailable", "disconnected", "error")
_deliveries: dict[tuple[str, str], Any] = {}
_answers: dict[int, Any] = {}
_receive_seconds = WEBHOOK_SECONDS.observe


def _init_children() -> None:
    """Create the usual series at zero, so rate() and alerts see them from the start."""
    for event_type in KNOWN_EVENT_TYPES:
        for outcome in ("accepted", "duplicate", "failed"):
            _deliveries[(event_type, outcome)] = WEBHOOK_DELIVERIES.labels(event_type, outcome)
    for outcome in ("ignored", "duplicate"):
        _deliveries[("other", outcome)] = WEBHOOK_DELIVERIES.labels("other", outcome)
    for outcome in REFUSALS:
        _deliveries[("unknown", outcome)] = WEBHOOK_DELIVERIES.labels("unknown", outcome)
    for status in (200, 202, 400, 401, 413, 415, 422, 500, 503):
        _answers[status] = WEBHOOK_ANSWERS.labels(str(status))
    for source in ("receiver", "retry"):
        APPLY_FAILURES.labels(source)


_init_children()


def observe_delivery(event_type: str, outcome: str, seconds: float, status: int) -> None:
    """One receiver answer: the hot path's whole metrics cost."""
    answers = _answers.get(status)
    if answers is None:
        answers = _answers[status] = WEBHOOK_ANSWERS.labels(str(status))
    answers.inc()
    if event_type not in KNOWN_EVENT_TYPES and event_type not in _DISPATCH_TYPES:
        event_type = "other" if event_type != "unknown" else event_type
    child = _deliveries.get((event_type, outcome))
    if child is None:
        child = _deliveries[(event_type, outcome)] = WEBHOOK_DELIVERIES.labels(event_type, outcome)
    child.inc()
    _receive_seconds(seconds)
    if outcome == "failed":
        APPLY_FAILURES.labels("receiver").inc()


def conflicting_delivery() -> None:
    CONFLICTING_DELIVERIES.inc()


def dispatch_drift(size: int) -> None:
    """One timeslot found drifting, `size` meters apart from our roster."""
    DISPATCH_DRIFT.inc()
    DISPATCH_DRIFT_METERS.set(size)


def apply_failed(source: str) -> None:
    APPLY_FAILURES.labels(source).inc()


def leap_call(endpoint: str, status: int | None, seconds: float) -> None:
    """LeapClient's `on_call` hook."""
    LEAP_CALLS.labels(endpoint, "none" if status is None else str(status)).inc()
    LEAP_SECONDS.labels(endpoint).observe(seconds)


def sync_run_ended(mode: str, outcome: str, seconds: float | None) -> None:
    SYNC_RUNS.labels(mode, outcome).inc()
    if seconds is not None:
        SYNC_SECONDS.labels(mode).observe(max(seconds, 0.0))


# ---- multi-process mode ------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


def reset_multiprocess_dir() -> None:
    """Remove a previous run's value files (call once, in the parent, before workers start).

    Only prometheus_client's own `*.db` files are removed, whatever else the directory holds.
    """
    directory = multiprocess_dir()
    if directory is None:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):
        file.unlink(missing_ok=True)


def _process_collector() -> Collector:
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


# ---- database gauges ---------------------------------------------------------------------

_JOBS = text(
    """
    SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
           count(*) FILTER (WHERE status = 'running') AS running,
           count(*) FILTER (WHERE status = 'dead') AS dead,
           COALESCE(EXTRACT(EPOCH FROM now() - min(run_after)
                    FILTER (WHERE status = 'queued' AND run_after <= now())), 0) AS oldest
    FROM jobs
    """
)
# Index scans on (status, seq): these statuses are rare, the inbox is large.
_NOT_APPLIED = text(
    """
    SELECT (SELECT count(*) FROM webhook_events WHERE status = 'failed') AS failed,
           (SELECT count(*) FROM webhook_events WHERE status = 'dead') AS dead
    """
)
# The newest stored delivery Leap got a 2xx for; one index probe per status.
_LAST_WEBHOOK = text(
    """
    SELECT EXTRACT(EPOCH FROM now() - max(received_at)) FROM (
        (SELECT received_at FROM webhook_events WHERE status = 'applied'
         ORDER BY seq DESC LIMIT 1)
        UNION ALL
        (SELECT received_at FROM webhook_events WHERE status = 'failed'
         ORDER BY seq DESC LIMIT 1)
        UNION ALL
        (SELECT received_at FROM webhook_events WHERE status = 'ignored'
         ORDER BY seq DESC LIMIT 1)
    ) latest
    """
)
_METERS = text(
    """
    SELECT COALESCE(enrollment_status, 'none') AS status, count(*) AS n
    FROM meters WHERE NOT is_archived GROUP BY 1
    """
)
_LAST_SYNC = text(
    """
    SELECT mode, EXTRACT(EPOCH FROM now() - max(finished_at)) AS age
    FROM sync_runs WHERE status = 'succeeded' AND finished_at IS NOT NULL GROUP BY mode
    """
)


class DatabaseGauges:
    """Gauges read from PostgreSQL at scrape time, cached for DB_CACHE_S."""

    def __init__(self, engine: AsyncEngine, mode: str) -> None:
        self.engine = engine
        self.mode = mode
        self._lock = asyncio.Lock()
        self._at = -DB_CACHE_S
        self._families: list[Metric] = []

    async def families(self) -> list[Metric]:
        async with self._lock:
            if time.monotonic() - self._at >= DB_CACHE_S:
                self._families = await self._read()
                self._at = time.monotonic()
            return self._families

    async def _read(self) -> list[Metric]:
        info = GaugeMetricFamily(
            "meter_sync_info", "Always 1; `mode` is api or webhook-only.", labels=["mode"]
        )
        info.add_metric([self.mode], 1)
        up = GaugeMetricFamily(
            "meter_sync_metrics_database_up",
            "1 when this scrape could read the database gauges, else 0 (they are left out).",
        )
        try:
            async with asyncio.timeout(DB_TIMEOUT_S):
                gauges = await self._query()
        except Exception as exc:
            if is_unavailable(exc):  # said once per outage, not once per scrape
                outage.failed(exc)
            else:
                log.warning(
                    "metrics: database gauges unavailable", extra={"error": type(exc).__name__}
                )
            up.add_metric([], 0)
            return [info, up]
        up.add_metric([], 1)
        return [info, up, *gauges]

    async def _query(self) -> list[Metric]:
        async with self.engine.connect() as conn:
            await conn.execute(text("SET LOCAL statement_timeout = 1500"))
            jobs = (await conn.execute(_JOBS)).one()
            not_applied = (await conn.execute(_NOT_APPLIED)).one()
            last_webhook = (await conn.execute(_LAST_WEBHOOK)).scalar()
            meters = (await conn.execute(_METERS)).all()
            last_sync = (await conn.execute(_LAST_SYNC)).all()
            await conn.rollback()
        out: list[Metric] = []

        def gauge(name: str, doc: str, value: float) -> None:
            out.append(GaugeMetricFamily(name, doc, value=value))

        gauge("meter_sync_job_queue_depth", "Queued enrichment jobs.", jobs.queued)
        gauge(
            "meter_sync_job_queue_oldest_age_seconds",
            "How long the oldest due queued job has waited (0 when none is due).",
            float(jobs.oldest),
        )
        gauge("meter_sync_jobs_running", "Jobs claimed by a worker right now.", jobs.running)
        gauge("meter_sync_jobs_dead", "Jobs given up after their last attempt.", jobs.dead)
        events = GaugeMetricFamily(
            "meter_sync_webhook_events_not_applied",
            "Stored events waiting for a retry (failed) or given up / invalid (dead).",
            labels=["status"],
        )
        events.add_metric(["failed"], not_applied.failed)
        events.add_metric(["dead"], not_applied.dead)
        out.append(events)
        if last_webhook is not None:
            gauge(
                "meter_sync_last_webhook_age_seconds",
                "Seconds since the newest delivery that was stored with a 2xx answer.",
                float(last_webhook),
            )
        by_status = GaugeMetricFamily(
            "meter_sync_meters",
            "Meters not archived, by Leap's global enrollment status (`none`: not known yet).",
            labels=["enrollment_status"],
        )
        for row in meters:
            by_status.add_metric([row.status], row.n)
        out.append(by_status)
        sync_age = GaugeMetricFamily(
            "meter_sync_sync_last_success_age_seconds",
            "Seconds since the last successful reconciliation run of each mode ended.",
            labels=["mode"],
        )
        for row in last_sync:
            sync_age.add_metric([row.mode], float(row.age))
        out.append(sync_age)
        return out


class _Scrape:
    def __init__(self, process: Collector, families: Iterable[Metric]) -> None:
        self.process = process
        self.extra = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.process.collect()
        yield from self.extra


async def render(gauges: DatabaseGauges | None) -> bytes:
    families = await gauges.families() if gauges is not None else []
    return generate_latest(_Scrape(_process_collector(), families))


# ---- the endpoint ------------------------------------------------------------------------

router = APIRouter()


@router.get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics (text format, no authentication)",
    description=(
        "Webhook deliveries by type and outcome, receiver latency, jobs, sync runs, Leap API "
        "calls, and gauges read from PostgreSQL at scrape time. Rules: docs/alerts.md."
    ),
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(request: Request) -> Response:
    gauges: DatabaseGauges | None = getattr(request.app.state, "metrics_gauges", None)
    return Response(await render(gauges), media_type=CONTENT_TYPE_LATEST)


# ---- the worker's own small server -------------------------------------------------------


async def _healthz(_: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def worker_app(engine: AsyncEngine, mode: str) -> Starlette:
    """`/metrics` and `/healthz` for `meter-sync worker --metrics-port`."""
    app = Starlette(
        routes=[Route("/healthz", _healthz), Route("/metrics", metrics)],
        middleware=[Middleware(ResponsePolicyMiddleware)],
    )
    app.state.metrics_gauges = DatabaseGauges(engine, mode)
    return app


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a process that handles its own signals (the worker's stop event)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def embedded_server(app: Starlette, host: str, port: int) -> EmbeddedServer:
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    return EmbeddedServer(config)
