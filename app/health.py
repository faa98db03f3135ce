"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.migrate import current_revision, head_revision
from app.problems import problem_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="PostgreSQL is reachable and migrated to head",
    responses={503: {"description": "Not ready"}},
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
