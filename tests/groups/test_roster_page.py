"""A roster page's size and cursor are read off the JSON PostgreSQL built (RosterPage.of)."""

from __future__ import annotations

import json
import uuid

from app.groups.repository import RosterPage


def _items(pairs: list[tuple[uuid.UUID, str | None]]) -> str:
    # The same text the roster statement builds: compact, items in meter_id order.
    return json.dumps(
        [{"meter_id": str(m), "partner_reference": r} for m, r in pairs], separators=(",", ":")
    )


def test_empty_page() -> None:
    page = RosterPage.of("[]")
    assert (page.count, page.last_meter_id) == (0, None)


def test_size_and_last_id_even_when_a_reference_looks_like_an_item() -> None:
    meters = sorted(uuid.uuid4() for _ in range(3))
    tricky = '{"meter_id":"' + str(uuid.uuid4()) + '"}'
    text = _items([(meters[0], "site-1"), (meters[1], None), (meters[2], tricky)])
    page = RosterPage.of(text)
    assert page.count == 3
    assert page.last_meter_id == meters[2]
    assert page.items_json == text
