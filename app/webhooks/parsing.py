"""Strict JSON decoding for webhook bodies.

Python's json module accepts things the contract refuses (NaN, duplicate keys, unlimited
nesting), so each is checked here and reported as a `BadBody` with a short reason.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
MAX_INT_DIGITS = 4300

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


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


def nesting_depth(raw: bytes, limit: int = MAX_DEPTH) -> int:
    """Deepest bracket nesting outside strings; stops counting once past `limit`."""
    skeleton = _STRING.sub(b"", raw)
    depth = deepest = 0
    for match in _BRACKET.finditer(skeleton):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        else:
            depth -= 1
    return deepest


def decode(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("body is not valid UTF-8") from None
    # Checked before parsing, so a hostile depth never reaches the recursive parser.
    if nesting_depth(raw) > MAX_DEPTH:
        raise BadBody(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except BadBody:
        raise
    except (ValueError, RecursionError):
        raise BadBody("body is not valid JSON") from None
