"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from app.migrate import current_revision, head_revision
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
        "newest migration this build ships; 503 (problem+json) otherwise. No API key needed."
    ),
    response_model=Ready,
    responses=problem_responses(503),
)
async def readyz(request: Request) -> JSONResponse:
    engine = request.app.state.engine
    try:
        async with asyncio.timeout(3):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            revision = await current_revision(engine)
    except Exception:
        return problem_response(503, "database unreachable")
    head = head_revision()
    if revision != head:
        return problem_response(503, f"database at migration {revision}, expected {head}")
    return JSONResponse({"status": "ready", "migration": revision})
