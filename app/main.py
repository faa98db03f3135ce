"""The FastAPI application: routers, error handling and the database lifecycle."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Receive, Scope, Send

from app import frontdoor, problems
from app.changes.endpoints import router as changes_router
from app.changes.signal import ChangeSignal
from app.config import Settings, load_settings
from app.db import create_engine, create_raw_pool, session_factory
from app.dispatch import receiver as dispatch_receiver
from app.dispatch.endpoints import router as dispatch_router
from app.dispatch.service import REAPPLIERS as DISPATCH_REAPPLIERS
from app.groups.endpoints import router as groups_router
from app.health import check_database
from app.health import router as health_router
from app.logs import RequestIdMiddleware
from app.meters.endpoints import router as meters_router
from app.metrics import DatabaseGauges
from app.metrics import router as metrics_router
from app.openapi import keep_example_nulls, operation_id
from app.partners.endpoints import router as partners_router
from app.response_policy import ResponsePolicyMiddleware
from app.status_page import router as status_page_router
from app.sync.endpoints import router as sync_router
from app.webhooks import receiver
from app.webhooks.endpoints import router as webhooks_router
from app.webhooks.receiver import DeliveryEndpoint
from app.webhooks.service import Inbox
from app.worker import Worker

DESCRIPTION = """
meter-sync keeps this partner's Leap meter inventory in PostgreSQL: which Leap meter
belongs to which asset (`partner_reference`), where each meter's enrollment stands, and
which market group each meter is in on each trade date.

**Authorize** with an API key (scope `read`, or `ops` for the event log and runs); it is
kept across reloads of this page. Where the key is: when the service generated its own
credentials at first start (the quick start), in `.meter-sync/credentials.json` beside it
(`api_keys`); otherwise in the `API_KEYS` setting (`scope:key,...`).

The status page for people is at [`/`](/): health verdict, events per minute, failed
events, runs and today's groups, fetched from these same endpoints with your key.

Cursors are opaque strings: pass a page's `next_cursor` back as `cursor`; it is null on
the last page.
"""

TAGS = [
    {"name": "meters", "description": "Meters, their enrollment and participation."},
    {"name": "groups", "description": "Market-group rosters per trade date."},
    {"name": "partners", "description": "Partner records by partner_reference."},
    {"name": "dispatch", "description": "Leap's dispatches: who must act, when, and drift."},
    {"name": "changes", "description": "What changed, in commit order (feed and stream)."},
    {"name": "sync", "description": "Reconciliation with Leap's API."},
    {"name": "ops", "description": "Event log and operations (scope `ops`)."},
    {"name": "webhooks", "description": "Leap's webhook deliveries."},
    {"name": "health", "description": "Probes."},
]


def tune_gc() -> None:
    """Fewer, cheaper collections: start-up objects are frozen out of every collection and
    young-generation passes run less often (measured in docs/benchmarks.md: p99 of the
    receiver 75 ms -> 20 ms)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def app_from_environment() -> FastAPI:
    """App factory for `serve --workers N`: each process reads what the parent prepared."""
    frontdoor.configure()  # each process sets its own limits
    app = create_app(load_settings(), run_worker=os.environ.get("METER_SYNC_RUN_WORKER") == "1")
    tune_gc()
    return app


def create_app(settings: Settings, *, run_worker: bool = False) -> FastAPI:
    if settings.database_url is None:
        raise ValueError("create_app needs a database URL (the CLI starts the embedded one)")
    database_url = settings.database_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(database_url)
        raw_pool = await create_raw_pool(database_url)
        app.state.engine = engine
        app.state.raw_pool = raw_pool  # one-statement lookups (app.deps.ReadsDep)
        app.state.sessions = session_factory(engine)
        app.state.receiver = receiver.Receiver.build(
            settings, Inbox(engine, app.state.sessions, raw_pool), DISPATCH_REAPPLIERS
        )
        app.state.metrics_gauges = DatabaseGauges(engine, settings.api_mode)
        await check_database(engine)  # logs what is wrong with the database, if anything
        app.state.change_signal = ChangeSignal(database_url)
        stop = asyncio.Event()
        worker = (
            asyncio.create_task(Worker(settings, engine, app.state.sessions).run(stop))
            if run_worker
            else None
        )
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                await worker
            await app.state.change_signal.close()
            await raw_pool.close()
            await engine.dispose()

    # Swagger UI and ReDoc assets are served by the app itself, not from a CDN: ops may
    # open /docs where the service runs, with no internet access.
    app = FastAPIOffline(
        title="meter-sync",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        # Authorize survives a reload of /docs (kept in the browser's localStorage).
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.settings = settings
    problems.install(app)
    keep_example_nulls(app)
    routers = (
        webhooks_router,
        meters_router,
        partners_router,
        groups_router,
        dispatch_router,
        changes_router,
        sync_router,
        health_router,
        metrics_router,
        status_page_router,
    )
    for router in routers:
        app.include_router(router)
    deliveries = [receiver.mount(app), dispatch_receiver.mount(app)]
    app.add_middleware(RequestIdMiddleware)
    wrap_outermost(app, ResponsePolicyMiddleware)
    return DeliveriesFirst.around(app, deliveries)


class DeliveriesFirst(FastAPI):
    """The app, with a POST to a Leap delivery path sent straight to its plain-ASGI
    endpoint, ahead of FastAPI's own call, the middleware stack and the route scan (over
    a third of the receiver's CPU; each endpoint adds the request id and the security
    headers itself, app/webhooks/receiver.py). Everything else, other methods on those
    paths included, is FastAPI's as usual."""

    delivery_endpoints: dict[str, DeliveryEndpoint]

    @classmethod
    def around(cls, app: FastAPI, endpoints: list[DeliveryEndpoint]) -> FastAPI:
        # FastAPIOffline builds a FastAPI instance; only its class changes here (no state
        # is added but the table), so it stays the same app in every other respect.
        app.__class__ = cls
        app.delivery_endpoints = {endpoint.path: endpoint for endpoint in endpoints}  # type: ignore[attr-defined]
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.delivery_endpoints.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def wrap_outermost(app: FastAPI, middleware: Callable[[ASGIApp], ASGIApp]) -> None:
    """Put `middleware` outside Starlette's own error middleware (add_middleware puts it
    inside), so it sees every answer, the 500s that middleware writes included."""
    build = app.build_middleware_stack

    def build_wrapped() -> ASGIApp:
        return middleware(build())

    app.build_middleware_stack = build_wrapped  # type: ignore[method-assign]
