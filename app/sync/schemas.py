"""Response and request models for reconciliation status and runs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from app.config import ApiMode
from app.dispatch.schemas import DispatchStatus
from app.models import RunMode


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    mode: str
    status: str
    trigger: str
    phase: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    pages: int
    meters: int
    errors: int
    error: str | None


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: RunMode = RunMode.DELTA


class SyncStatus(BaseModel):
    mode: ApiMode
    detail: str
    last_event_received_at: datetime | None
    seconds_since_last_event: float | None
    last_run: RunOut | None
    last_full_run: RunOut | None
    # Seconds since the start of the last successful run: how stale the mirror may be.
    lag_seconds: float | None
    queued_jobs: int
    failed_events: int
    dead_events: int
    dispatch: DispatchStatus
