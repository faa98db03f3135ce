"""Reconciliation status and runs."""

from __future__ import annotations

from fastapi import APIRouter

from app import examples
from app.auth import OpsScope, ReadScope
from app.deps import SessionDep, SettingsDep
from app.problems import Problem, problem_responses
from app.sync import queries
from app.sync.runs import request_run
from app.sync.schemas import RunOut, RunRequest, SyncStatus

router = APIRouter(prefix="/v1/sync", tags=["sync"])


@router.get(
    "/status",
    summary="Webhook and reconciliation health",
    description="Mode, last event received, last (full) run, lag, queue and failed events.",
    response_model=SyncStatus,
    responses={
        **examples.example_response(200, examples.SYNC_STATUS),
        **problem_responses(401, 403),
    },
)
async def get_sync_status(session: SessionDep, settings: SettingsDep, _: ReadScope) -> SyncStatus:
    return await queries.status(session, settings)


@router.post(
    "/runs",
    summary="Request a reconciliation run",
    description="Queues a delta or full run for the leader worker. Scope `ops`.",
    status_code=202,
    response_model=RunOut,
    responses={
        **examples.example_response(202, {**examples.RUN, "status": "queued", "phase": "meters"}),
        **problem_responses(400, 401, 403, 409, 422),
    },
)
async def request_sync_run(
    body: RunRequest, session: SessionDep, settings: SettingsDep, _: OpsScope
) -> RunOut:
    if settings.api_mode != "api":
        raise Problem(409, "webhook-only mode: set LEAP_API_KEY to reconcile with Leap's API")
    return RunOut.model_validate(await request_run(session, body.mode, "request"))


@router.get(
    "/runs",
    summary="Recent reconciliation runs",
    description="The last 50 runs, newest first. Scope `ops`.",
    response_model=list[RunOut],
    responses={**examples.example_response(200, [examples.RUN]), **problem_responses(401, 403)},
)
async def list_sync_runs(session: SessionDep, _: OpsScope) -> list[RunOut]:
    return await queries.recent_runs(session)
