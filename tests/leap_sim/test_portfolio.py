"""The generated portfolio: determinism, consistency, scale, and the delta index."""

from __future__ import annotations

import tracemalloc
from collections import Counter
from datetime import timedelta

from app.leap_sim import regions as R
from app.leap_sim.ids import IdCodec
from app.leap_sim.portfolio import Portfolio
from app.leap_sim.search import MeterFilter, search
from tests.support.sim import ANCHOR


def test_same_seed_same_records_other_seed_other_ids() -> None:
    a = Portfolio(500, 16, 3, anchor=ANCHOR)
    b = Portfolio(500, 16, 3, anchor=ANCHOR)
    c = Portfolio(500, 16, 4, anchor=ANCHOR)
    for i in (0, 1, 17, 250, 499):
        assert a.meter_record(i) == b.meter_record(i)
        assert a.enrollment_record(i) == b.enrollment_record(i)
        assert a.meter_id(i) != c.meter_id(i)
    assert [g.market_group_id for g in a.groups] == [g.market_group_id for g in b.groups]
    assert a.index_of(c.meter_id(7)) is None


def test_id_codec_round_trip_and_rejects_foreign_ids() -> None:
    codec = IdCodec(5, "meter")
    ids = [codec.encode(i) for i in range(2000)]
    assert len(set(ids)) == 2000
    assert all(codec.decode(m) == i for i, m in enumerate(ids))
    assert all(m[14] == "4" and m[19] in "89ab" for m in ids)
    assert codec.decode("11111111-1111-1111-1111-111111111111") is None
    assert codec.decode("not-a-uuid") is None


def test_million_meter_portfolio_is_lazy() -> None:
    tracemalloc.start()
    p = Portfolio(1_000_000, 400, 9, anchor=ANCHOR)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Lazy is judged by memory, not by the clock (which depends on the machine's load).
    assert peak < 2_000_000  # a million records would need hundreds of MB
    last = p.meter_id(999_999)
    assert p.index_of(last) == 999_999
    record = p.meter_record(999_999)
    assert record is not None
    assert record["meter_id"] == last
    assert p.meter_record(1_000_000) is None
    assert not p.overlay


def test_region_utility_zone_and_address_agree() -> None:
    p = Portfolio(3000, 16, 2, anchor=ANCHOR)
    seen_regions: Counter[str] = Counter()
    for i in range(0, 3000, 3):
        record = p.meter_record(i)
        assert record is not None
        region = R.REGION_BY_NAME[record["transmission_region"]]
        seen_regions[region.name] += 1
        utility = next(u for u in region.utilities if u.name == record["utility"]["utility_name"])
        assert record["site"]["load_zone"] in utility.load_zones
        assert record["customer"]["state_or_province_code"] == utility.state
        assert record["customer"]["city"] in {c for c, _ in utility.cities}
    assert set(seen_regions) == {r.name for r in R.REGIONS}


def test_references_shared_missing_and_findable() -> None:
    p = Portfolio(2000, 16, 2, anchor=ANCHOR)
    refs = Counter(c.partner_reference for i in range(2000) if (c := p.core(i)))
    missing = refs.pop(None, 0)
    assert 0 < missing < 200
    shared = [r for r, n in refs.items() if n > 1]
    assert shared
    for ref in shared[:20]:
        found = p.indices_for_reference(str(ref))
        assert len(found) == refs[ref]
        assert all(p.core(i) and p.core(i).partner_reference == ref for i in found)  # type: ignore[union-attr]


def test_periods_carry_groups_of_the_meters_region_when_active_or_eligible() -> None:
    p = Portfolio(1500, 16, 2, anchor=ANCHOR)
    group_region = {g.market_group_id: g.region for g in p.groups}
    active = 0
    for i in range(1500):
        record = p.enrollment_record(i)
        assert record is not None
        entries = record["program_enrollment"]
        starts = [e["delivery_period_start_date_time"] for e in entries]
        assert len(entries) >= 4
        # Leap names the group on ELIGIBLE enrollments too
        if record["global_enrollment_status"] not in ("ACTIVE", "ELIGIBLE"):
            assert not any("market_group_id" in e for e in entries)
            continue
        active += 1
        grouped = [e for e in entries if "market_group_id" in e]
        assert len(grouped) == 4
        assert all(
            group_region[e["market_group_id"]] == record["transmission_region"] for e in grouped
        )
        assert len(set(starts)) >= 4
    assert active > 700


def test_caiso_month_boundaries_follow_local_midnight() -> None:
    p = Portfolio(1, 8, 1, anchor=ANCHOR)
    june = p.periods["CAISO"][1]
    assert (june.start.isoformat(), june.end.isoformat()) == (
        "2025-06-01T07:00:00+00:00",
        "2025-06-30T07:00:00+00:00",
    )
    assert p.periods["WECC_SW"][1].start.hour == 7  # Arizona keeps standard time
    assert p.periods["NYISO"][0].label == "2025_MAY"


def test_base_audit_times_never_pass_the_anchor() -> None:
    p = Portfolio(1000, 8, 1, anchor=ANCHOR)
    for i in range(1000):
        c = p.core(i)
        assert c is not None
        assert c.created_at <= c.updated_at <= ANCHOR


def test_delta_over_a_million_meters_only_looks_at_changed_ones() -> None:
    p = Portfolio(1_000_000, 40, 5, anchor=ANCHOR)
    changed = [12, 500_000, 999_998]
    for i in changed:
        p.mutate(i).status = "INELIGIBLE"
    calls = Counter[str]()
    real_core = p.core

    def counting_core(index: int) -> object:
        calls["core"] += 1
        return real_core(index)

    p.core = counting_core  # type: ignore[method-assign,assignment]
    page = search(
        p, MeterFilter(last_modified_date_time=ANCHOR), lambda c: {"meter_id": c.meter_id}
    )
    assert [m["meter_id"] for m in page["meters"]] == [p.meter_id(i) for i in changed]
    assert calls["core"] < 20
    later = search(
        p,
        MeterFilter(last_modified_date_time=ANCHOR + timedelta(days=36500)),
        lambda c: {"meter_id": c.meter_id},
    )
    assert later == {"meters": []}
