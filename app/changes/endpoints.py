"""The change feed for internal services: pages, long polls, Server-Sent Events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from app.auth import ReadScope
from app.changes import queries
from app.changes.schemas import ChangePage
from app.params import QueryInt, single_valued
from app.problems import problem_responses

router = APIRouter(prefix="/v1/changes", tags=["changes"], dependencies=[Depends(single_valued)])

EVENT_STREAM = "text/event-stream"


@router.get(
    "",
    summary="Changes in commit order",
    description=(
        "Changes after `after` (a cursor the feed gave), oldest first; without it, from the "
        "oldest change kept. Pass `next_cursor` back as `after` to continue: it is never null. "
        "`wait` (seconds, at most 30) waits for a first change when none is new. "
        "`types` filters (comma-separated). With `Accept: text/event-stream` the answer is a "
        "stream of Server-Sent Events (`id` = cursor), resuming after `Last-Event-ID`, else "
        "`after`, else from now on. A cursor older than the changes kept is a 410 that gives "
        "`oldest_cursor`."
    ),
    response_model=ChangePage,
    responses={
        **problem_responses(401, 403, 410, 422),
        200: {"content": {EVENT_STREAM: {"schema": {"type": "string"}}}},
    },
)
async def list_changes(
    request: Request,
    _: ReadScope,
    after: Annotated[
        str | None,
        Query(
            max_length=64,
            description="The cursor to continue after (a change's `cursor`, or `next_cursor`)",
            examples=["7392-1841"],
        ),
    ] = None,
    limit: Annotated[
        QueryInt,
        Query(ge=1, le=queries.MAX_LIMIT, description="Changes per page", examples=[100]),
    ] = 100,
    types: Annotated[
        str | None,
        Query(
            max_length=500,
            description="Only these change types, comma-separated",
            examples=["meter.linked,group.changed"],
        ),
    ] = None,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=queries.MAX_WAIT_S,
            description="Seconds to wait for a first change when none is new (at most 30)",
            examples=[30],
        ),
    ] = 0,
) -> ChangePage | Response:
    sessions = request.app.state.sessions
    signal = request.app.state.change_signal
    wanted = queries.parse_types(types)
    # Accept and Last-Event-ID are read here, not declared: they are the SSE protocol's.
    if EVENT_STREAM in request.headers.get("accept", "").lower():
        start = await queries.stream_start(sessions, request.headers.get("last-event-id"), after)
        return StreamingResponse(
            queries.stream(sessions, signal, start, wanted),
            media_type=EVENT_STREAM,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return await queries.read_page(
        sessions, signal, after=after, limit=limit, types=wanted, wait_s=wait
    )
