"""Response and request models for reconciliation status and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
    # What the run changed (counted page by page, so a resumed run keeps its counts).
    meters_new: int
    meters_updated: int
    meters_archived: int
    error: str | None


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: RunMode = RunMode.DELTA


class HealthProblem(BaseModel):
    """One reason the verdict is unhealthy (docs/operations.md lists them)."""

    code: Literal["last_run_failed", "webhooks_quiet", "events_waiting", "sync_lagging"] = Field(
        description="Stable name of the problem, for alerts."
    )
    detail: str = Field(description="What is wrong and what to do, for people.")


class SyncStatus(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "healthy": False,
                    "problems": [
                        {
                            "code": "events_waiting",
                            "detail": "2 dead webhook events wait for ops: "
                            "`meter-sync events --status failed,dead`",
                        }
                    ],
                    "mode": "api",
                    "detail": "reconciling with Leap's API",
                    "last_event_received_at": "2026-05-04T09:15:02Z",
                    "seconds_since_last_event": 12.5,
                    "last_run": None,
                    "last_full_run": None,
                    "lag_seconds": 311.0,
                    "queued_jobs": 0,
                    "failed_events": 0,
                    "dead_events": 2,
                }
            ]
        }
    )

    healthy: bool = Field(description="True when `problems` is empty.")
    problems: list[HealthProblem]
    mode: ApiMode
    detail: str
    last_event_received_at: datetime | None
    seconds_since_last_event: float | None
    last_run: RunOut | None
    last_full_run: RunOut | None
    lag_seconds: float | None = Field(
        description=(
            "Reconciliation lag: seconds since the start of the last successful run "
            "(changes older than that are in the mirror even if a webhook was missed). "
            "Null in webhook-only mode, and in API mode before the first successful run."
        )
    )
    queued_jobs: int
    failed_events: int
    dead_events: int
    dispatch: DispatchStatus
