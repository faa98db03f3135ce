"""Read side for reconciliation."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utc_now
from app.config import ApiMode, Settings
from app.dispatch.queries import status as dispatch_status
from app.models import Job, JobStatus, RunMode, RunStatus, SyncRun, WebhookEvent, WebhookStatus
from app.sync.runs import last_run
from app.sync.schemas import HealthProblem, RunOut, SyncStatus


def _out(run: SyncRun | None) -> RunOut | None:
    return RunOut.model_validate(run) if run is not None else None


async def status(session: AsyncSession, settings: Settings) -> SyncStatus:
    now = utc_now()
    last_event = await session.scalar(
        select(WebhookEvent.received_at).order_by(WebhookEvent.seq.desc()).limit(1)
    )
    succeeded = await last_run(session, status=RunStatus.SUCCEEDED)
    result = await session.execute(
        select(WebhookEvent.status, func.count())
        .where(WebhookEvent.status.in_((WebhookStatus.FAILED, WebhookStatus.DEAD)))
        .group_by(WebhookEvent.status)
    )
    counts: dict[str, int] = {status: count for status, count in result}
    queued = await session.scalar(select(func.count()).where(Job.status == JobStatus.QUEUED))
    api = settings.api_mode == ApiMode.API
    latest = await last_run(session)
    quiet = (now - last_event).total_seconds() if last_event else None
    lag = (
        (now - succeeded.started_at).total_seconds()
        if api and succeeded is not None and succeeded.started_at is not None
        else None
    )
    failed, dead = int(counts.get(WebhookStatus.FAILED, 0)), int(counts.get(WebhookStatus.DEAD, 0))
    problems = _problems(settings, latest if api else None, quiet, failed, dead, lag, api)
    return SyncStatus(
        healthy=not problems,
        problems=problems,
        mode=settings.api_mode,
        detail=(
            "reconciling with Leap's API"
            if api
            else "webhook-only: LEAP_API_KEY is unset, so no enrichment and no reconciliation"
        ),
        last_event_received_at=last_event,
        seconds_since_last_event=quiet,
        last_run=_out(latest),
        last_full_run=_out(await last_run(session, RunMode.FULL)),
        lag_seconds=lag,
        queued_jobs=int(queued or 0),
        failed_events=failed,
        dead_events=dead,
        dispatch=await dispatch_status(session),
    )


def _problems(
    settings: Settings,
    latest: SyncRun | None,
    quiet: float | None,
    failed: int,
    dead: int,
    lag: float | None,
    api: bool,
) -> list[HealthProblem]:
    """The verdict's reasons, each with what to do (docs/operations.md)."""
    found: list[HealthProblem] = []
    if latest is not None and latest.status == RunStatus.FAILED:
        found.append(
            HealthProblem(
                code="last_run_failed",
                detail=f"reconciliation run {latest.id} failed: {latest.error or 'no error text'}"
                " (the schedule tries again; `meter-sync sync` runs one now)",
            )
        )
    if quiet is None:
        found.append(
            HealthProblem(
                code="webhooks_quiet",
                detail="no webhook event received yet: check that Leap's webhook "
                "subscription points at this service's /webhooks/leap",
            )
        )
    elif quiet > settings.webhook_quiet_seconds:
        found.append(
            HealthProblem(
                code="webhooks_quiet",
                detail=f"no webhook event for {duration(quiet)} "
                f"(more than WEBHOOK_QUIET_SECONDS={settings.webhook_quiet_seconds}): "
                "check Leap's webhook subscription and the receiver's logs",
            )
        )
    if failed or dead:
        found.append(
            HealthProblem(
                code="events_waiting",
                detail=f"{failed} failed and {dead} dead webhook events: "
                "`meter-sync events --status failed,dead` shows them and their errors",
            )
        )
    if api and lag is None:
        found.append(
            HealthProblem(
                code="sync_lagging",
                detail="no successful reconciliation run yet (the first one may be running)",
            )
        )
    elif api and lag is not None and lag > settings.lag_limit_seconds:
        found.append(
            HealthProblem(
                code="sync_lagging",
                detail=f"last successful reconciliation started {duration(lag)} ago "
                f"(more than SYNC_LAG_MAX_SECONDS={settings.lag_limit_seconds})",
            )
        )
    return found


def duration(seconds: float) -> str:
    """`3 h 05 min`, `4 min 10 s`, `12 s`: for people."""
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    if whole >= 60:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole} s"


async def recent_runs(session: AsyncSession, limit: int = 50) -> list[RunOut]:
    result = await session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(limit))
    return [RunOut.model_validate(r) for r in result]
