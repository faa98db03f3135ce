"""Nulls in OpenAPI examples.

FastAPI leaves every None out of the OpenAPI document (it is encoded with exclude_none),
examples included, so an example could not show a nullable field as null: examples write
NULL instead and `keep_example_nulls` turns it back into null.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

NULL = "\x00null"


def operation_id(route: APIRoute) -> str:
    """The endpoint function's name (`get_meter_participation`), not FastAPI's path-and-method
    compound: what an ops person reads in /docs and a client generator names methods by."""
    return route.name


def restore_nulls(value: Any) -> Any:
    """Replace NULL by None throughout a JSON-like value, in place where it can."""
    if value == NULL:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = restore_nulls(item)
    elif isinstance(value, list):
        value[:] = [restore_nulls(item) for item in value]
    return value


def keep_example_nulls(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI caches the document, so it is fixed in place once.
        document: dict[str, Any] = restore_nulls(generate())
        return document

    app.openapi = openapi  # type: ignore[method-assign]
