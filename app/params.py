"""Query parameters read as documented, not as leniently as pydantic would.

Pydantic reads numbers as Unix timestamps for dates and datetimes (`3.9e-77` is
1970-01-01), `10.0` as an integer and `on` or `0` as booleans; a parameter given twice
would silently keep its last value. Here each takes what OpenAPI says: ISO 8601 dates,
integer digits, `true`/`false`, once.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import Request
from pydantic import BeforeValidator

from app.problems import Problem

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")
_INTEGER = re.compile(r"-?[0-9]+\Z")
_BOOLEAN = re.compile(r"(true|false)\Z")


def _shaped(pattern: re.Pattern[str], expected: str) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, str) and not pattern.match(value):
            raise ValueError(f"expected {expected}")
        return value

    return BeforeValidator(check)


IsoDate = Annotated[date, _shaped(_DATE, "YYYY-MM-DD")]
IsoDateTime = Annotated[datetime, _shaped(_DATE_TIME, "an ISO 8601 date-time")]
QueryInt = Annotated[int, _shaped(_INTEGER, "an integer")]
QueryBool = Annotated[bool, _shaped(_BOOLEAN, "true or false")]


async def single_valued(request: Request) -> None:
    """Router dependency: a query parameter given more than once is a 422."""
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen:
            raise Problem(422, f"query parameter {name!r} is given more than once")
        seen.add(name)


def id_cursor(cursor: str | None) -> uuid.UUID | None:
    """A `next_cursor` that is the last id of a page (rosters, a dispatch's meters)."""
    if cursor is None:
        return None
    try:
        return uuid.UUID(cursor)
    except ValueError:
        raise Problem(422, "cursor is not a next_cursor this API gave out") from None
