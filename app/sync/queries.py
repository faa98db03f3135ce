"""Read side for reconciliation."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import utc_now
from app.config import ApiMode, Settings
from app.dispatch.queries import status as dispatch_status
from app.models import Job, JobStatus, RunMode, RunStatus, SyncRun, WebhookEvent, WebhookStatus
from app.sync.runs import last_run
from app.sync.schemas import RunOut, SyncStatus


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
    return SyncStatus(
        mode=settings.api_mode,
        detail=(
            "reconciling with Leap's API"
            if api
            else "webhook-only: LEAP_API_KEY is unset, so no enrichment and no reconciliation"
        ),
        last_event_received_at=last_event,
        seconds_since_last_event=(now - last_event).total_seconds() if last_event else None,
        last_run=_out(await last_run(session)),
        last_full_run=_out(await last_run(session, RunMode.FULL)),
        lag_seconds=(
            (now - succeeded.started_at).total_seconds()
            if succeeded is not None and succeeded.started_at is not None
            else None
        ),
        queued_jobs=int(queued or 0),
        failed_events=int(counts.get(WebhookStatus.FAILED, 0)),
        dead_events=int(counts.get(WebhookStatus.DEAD, 0)),
        dispatch=await dispatch_status(session),
    )


async def recent_runs(session: AsyncSession, limit: int = 50) -> list[RunOut]:
    result = await session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(limit))
    return [RunOut.model_validate(r) for r in result]
