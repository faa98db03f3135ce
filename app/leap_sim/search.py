"""Leap's meter search filter (`MeterFilterRequest`) and paging over the portfolio.

Results come in index order. The opaque `page_token` carries the last index returned and
a fingerprint of the filter, so a token is only accepted with the filter that made it.
Filters that name meters (ids, references) or a recent `last_modified_date_time` /
`created_after_date_time` narrow the candidates first, so they never walk the portfolio.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.leap_sim.portfolio import MeterCore, Portfolio

JSON = dict[str, Any]
Region = Literal["CAISO", "ERCOT", "NYISO", "ISONE", "PJM", "SERC", "WECC_SW", "WECC_PC"]
Status = Literal["ACTIVE", "ELIGIBLE", "INELIGIBLE", "NOT_PARTICIPATING", "PENDING"]
MeterType = Literal["UTILITY_METER", "SUBMETER", "DEVICE"]
LoadType = Literal[
    "HVAC", "EV_CHARGING", "BATTERY_STORAGE", "COLD_STORAGE", "PUMPING", "WATER_HEATING",
    "BUILDING_AUTOMATION", "GENERATION", "MANUFACTURING", "LIGHTING", "OTHER",
]  # fmt: skip
ActionType = Literal[
    "IS_AUTHORIZED", "DOCUMENTS_SIGNED", "HAS_AMI", "NOT_ENROLLED_IN_CONFLICTING_PROGRAM",
    "PARTICIPATING", "HAS_MARKET_REGISTRATION", "NO_MISSING_FIELDS", "GENERATOR", "ADDRESS",
    "HAS_NOMINATIONS", "HAS_BIDDING_STRATEGY", "IS_ELIGIBLE", "IS_ASSIGNED_TO_A_RESOURCE",
    "MEETS_EXTRA_PROGRAM_REQUIREMENTS",
]  # fmt: skip


class SearchError(ValueError):
    def __init__(self, title: str, details: JSON) -> None:
        super().__init__(title)
        self.title = title
        self.details = details


class MeterFilter(BaseModel):
    """Body of `POST /v2/meters/search` and `POST /v2/meters/enrollments/search`."""

    model_config = ConfigDict(extra="ignore")

    page_token: str | None = None
    page_size: int = Field(500, ge=1, le=500)
    transmission_region: Region | None = None
    customer_classification: Literal["RESIDENTIAL", "COMMERCIAL"] | None = None
    meter_ids: list[str] | None = Field(None, max_length=1000)
    partner_references: list[str] | None = Field(None, min_length=1, max_length=1000)
    global_enrollment_statuses: list[Status] | None = Field(None, min_length=1, max_length=5)
    meter_types: list[MeterType] | None = Field(None, min_length=1, max_length=20)
    load_types: list[LoadType] | None = Field(None, min_length=1, max_length=20)
    customer_groups: list[str] | None = Field(None, min_length=1, max_length=20)
    tags: list[str] | None = Field(None, min_length=1, max_length=20)
    last_modified_date_time: datetime | None = None
    created_after_date_time: datetime | None = None
    created_before_date_time: datetime | None = None
    partner_action_required: bool = False
    exclude_archived: bool = False
    connection_reference_ids: list[str] | None = Field(None, min_length=1, max_length=100)
    action_type: list[ActionType] | None = Field(None, min_length=1, max_length=20)

    @field_validator(
        "last_modified_date_time", "created_after_date_time", "created_before_date_time"
    )
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def check_ids(self) -> None:
        for value in self.meter_ids or ():
            try:
                uuid.UUID(value)
            except ValueError:
                raise SearchError("Meter id is not a UUID", {"meter_id": value}) from None

    def fingerprint(self) -> str:
        body = self.model_dump(mode="json", exclude={"page_token", "page_size"})
        raw = json.dumps(body, sort_keys=True).encode()
        return hashlib.blake2b(raw, digest_size=8).hexdigest()


def _encode_token(after: int, fingerprint: str) -> str:
    raw = json.dumps({"a": after, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, fingerprint: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        after, fp = body["a"], body["f"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise SearchError("Invalid page token", {"page_token": token}) from None
    if not isinstance(after, int) or fp != fingerprint:
        raise SearchError("Page token does not match this search", {"page_token": token})
    return after


def _candidates(p: Portfolio, f: MeterFilter, after: int) -> Iterator[int]:
    narrowed: list[set[int]] = []
    if f.meter_ids:
        narrowed.append({i for m in f.meter_ids if (i := p.index_of(m)) is not None})
    if f.partner_references:
        narrowed.append({i for r in f.partner_references for i in p.indices_for_reference(r)})
    if f.connection_reference_ids:
        refs = f.connection_reference_ids
        narrowed.append({i for r in refs for i in p.indices_for_connection(r)})
    if f.last_modified_date_time is not None:
        changed = p.modified_after(f.last_modified_date_time)
        if changed is not None:
            narrowed.append(set(changed))
    if f.created_after_date_time is not None:
        created = p.created_after(f.created_after_date_time)
        if created is not None:
            narrowed.append(set(created))
    if not narrowed:
        yield from range(after + 1, p.count)
        return
    chosen = set.intersection(*narrowed)
    yield from sorted(i for i in chosen if i > after)


def matches(c: MeterCore, f: MeterFilter) -> bool:
    checks = (
        f.transmission_region is None or c.region.name == f.transmission_region,
        f.customer_classification is None or c.classification == f.customer_classification,
        not f.global_enrollment_statuses or c.status in f.global_enrollment_statuses,
        not f.meter_types or c.meter_type in f.meter_types,
        not f.load_types or bool(set(c.load_types) & set(f.load_types)),
        not f.customer_groups or c.customer_group in f.customer_groups,
        not f.tags or bool(set(c.tags) & set(f.tags)),
        f.last_modified_date_time is None or c.updated_at > f.last_modified_date_time,
        f.created_after_date_time is None or c.created_at > f.created_after_date_time,
        f.created_before_date_time is None or c.created_at < f.created_before_date_time,
        not f.partner_action_required or bool(c.partner_actions),
        not f.exclude_archived or not c.is_archived,
        not f.connection_reference_ids
        or bool(set(c.connection_references) & set(f.connection_reference_ids)),
        not f.action_type
        or any(a["action_type"] in f.action_type for a in c.partner_actions + c.leap_actions),
        not f.partner_references or c.partner_reference in f.partner_references,
    )
    return all(checks)


def search(p: Portfolio, f: MeterFilter, render: Callable[[MeterCore], JSON]) -> JSON:
    """One page of Leap's search answer: `{"meters": [...], "next_page_token"?: str}`."""
    f.check_ids()
    fingerprint = f.fingerprint()
    after = -1 if f.page_token is None else _decode_token(f.page_token, fingerprint)
    page: list[JSON] = []
    last = after
    more = False
    region = f.transmission_region
    for index in _candidates(p, f, after):
        if region is not None and p.region_of(index) != region:
            continue  # cheap pre-check; regions are the most common narrowing filter
        core = p.core(index)
        if core is None or not matches(core, f):
            continue
        if len(page) == f.page_size:
            more = True
            break
        page.append(render(core))
        last = index
    out: JSON = {"meters": page}
    if more:
        out["next_page_token"] = _encode_token(last, fingerprint)
    return out
