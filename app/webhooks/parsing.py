"""Strict JSON decoding for webhook bodies.

Python's json module accepts things the contract refuses (NaN, duplicate keys, unlimited
nesting), so each is checked here and reported as a `BadBody` with a short reason.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64
MAX_INT_DIGITS = 4300


class BadBody(ValueError):
    """The body is not acceptable JSON; the message is safe to show the sender."""


def _reject_constant(name: str) -> Any:
    raise BadBody(f"{name} is not valid JSON")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise BadBody("duplicate key in a JSON object")
    return obj


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise BadBody(f"integer longer than {MAX_INT_DIGITS} digits")
    return int(digits)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadBody("number out of range")
    return value


# Built once: json.loads with hooks builds a new decoder (and its scanner) on every call.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates,
    parse_constant=_reject_constant,
    parse_int=_parse_int,
    parse_float=_parse_float,
)


def nesting_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Depth of a parsed JSON value (a scalar is 0); stops counting once past `limit`."""
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return 0
    if limit <= 0:
        return 1
    deepest = 0
    for child in children:
        if isinstance(child, dict | list):
            deepest = max(deepest, nesting_depth(child, limit - 1))
            if deepest >= limit:
                break
    return deepest + 1


def decode(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("body is not valid UTF-8") from None
    try:
        value = _DECODER.decode(text)
    except BadBody:
        raise
    except RecursionError:
        # The C parser stops at the interpreter's recursion limit (~1000 levels), cleanly.
        raise BadBody(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        raise BadBody("body is not valid JSON") from None
    if nesting_depth(value) > MAX_DEPTH:
        raise BadBody(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value
