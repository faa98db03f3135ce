"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.migrate import current_revision, schema_problem
from app.outage import outage
from app.problems import problem_response, problem_responses

router = APIRouter(tags=["health"])


class Alive(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


class Ready(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "ready", "migration": "0003"}]}
    )

    status: str
    migration: str


@router.get(
    "/healthz",
    summary="The process is alive",
    description="Liveness probe: answers without touching the database. No API key needed.",
    response_model=Alive,
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="PostgreSQL is reachable and migrated to head",
    description=(
        "Readiness probe: 200 once PostgreSQL answers within 3 s and its schema is at the "
        "newest migration this build ships; 503 (problem+json) otherwise, with a `detail` "
        "saying what is wrong and what to run (e.g. `meter-sync migrate`). No API key needed."
    ),
    response_model=Ready,
    responses=problem_responses(503),
)
async def readyz(request: Request) -> JSONResponse:
    revision, problem = await check_database(request.app.state.engine)
    if problem is not None:
        return problem_response(503, problem)
    return JSONResponse({"status": "ready", "migration": revision})


async def check_database(engine: AsyncEngine) -> tuple[str | None, str | None]:
    """(revision, None) when PostgreSQL answers and is migrated to head, else (_, what is
    wrong and what to do). A change of state is logged once (app/outage.py); `serve`
    calls this at start-up too, so a bad database is said before the first request."""
    try:
        async with asyncio.timeout(3):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            revision = await current_revision(engine)
    except Exception as exc:
        return None, outage.failed(exc)
    problem = schema_problem(revision)
    if problem is None:
        outage.up()
    else:
        outage.down(problem)
    return revision, problem
