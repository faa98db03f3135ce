"""A deterministic, generated Leap portfolio of up to millions of meters.

Meter `i` is a pure function of (seed, i, anchor): nothing is materialised per meter, so
a 1,000,000-meter portfolio costs only its market groups and the overlay. The overlay is
a dict keyed by index holding what the simulator changed (status, archival, participation
windows, required actions, roster entries, added meters); a sorted index of overlay
`updated_at` values answers `last_modified_date_time` deltas without walking the base.

Every base meter's `audit.updated_at` is at or before `anchor` (the instant the portfolio
was generated); every mutation stamps a time after it. `meter_record(i)` and
`enrollment_record(i)` render Leap's Meter Details v2 and Meter Enrollment v2 shapes.
"""

from __future__ import annotations

import bisect
import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from app.leap_sim import regions as R
from app.leap_sim.ids import IdCodec
from app.leap_sim.periods import (
    PERIOD_OFFSETS,
    delivery_period_of_window,
    monthly_periods,
    program_periods,
)
from app.leap_sim.render import render_meter
from app.leap_sim.shapes import (
    FAR_FUTURE,
    JSON,
    Draw,
    Group,
    MeterCore,
    Mutation,
    Period,
    action,
    iso,
    program_entry,
)

__all__ = ["FAR_FUTURE", "JSON", "Group", "MeterCore", "Mutation", "Period", "Portfolio", "iso"]
# Program enrollments that name their market group: Leap lists the group on ELIGIBLE
# enrollments too (only ACTIVE ones make a meter dispatchable).
GROUPED_STATUSES = ("ACTIVE", "ELIGIBLE")


class Portfolio:
    def __init__(
        self,
        n_meters: int,
        n_groups: int,
        seed: int,
        anchor: datetime | None = None,
        *,
        run_id: str | None = None,
    ) -> None:
        if n_meters < 0 or n_groups < 0:
            raise ValueError("n_meters and n_groups must be >= 0")
        self.base_count = n_meters
        self.seed = seed
        now = datetime.now(UTC) if anchor is None else anchor.astimezone(UTC)
        self.anchor = now.replace(minute=0, second=0, microsecond=0)
        self._codec = IdCodec(seed, "meter")
        # Meters added while running (POST /sim/meters, /sim/connect) live only in memory.
        # Their ids come from a codec keyed by this run as well, so a restarted fake Leap
        # never hands out an id it gave an earlier run's meter (with another reference):
        # the generated base is the same for a seed, added meters are new meters.
        self.run_id = run_id if run_id is not None else secrets.token_hex(8)
        self._added_codec = IdCodec(seed, f"added:{self.run_id}")
        self._ref_prefix = "site-" + hashlib.blake2b(str(seed).encode(), digest_size=2).hexdigest()
        self._connect_prefix = self._ref_prefix.replace("site-", "connect-", 1)
        ns = uuid.uuid5(uuid.NAMESPACE_URL, f"https://leap-sim.invalid/{seed}")
        self.groups: list[Group] = []
        self.groups_by_region: dict[str, list[Group]] = {r.name: [] for r in R.REGIONS}
        for g in range(n_groups):
            region = R.REGIONS[g % len(R.REGIONS)].name
            grp = Group(g, str(uuid.uuid5(ns, f"group:{g}")), f"{region}_MG_{g:04d}", region)
            self.groups.append(grp)
            self.groups_by_region[region].append(grp)
        self.group_by_id = {g.market_group_id: g for g in self.groups}
        # monthly periods per region (participation windows and group months follow them)
        self.periods = {r.name: monthly_periods(r, self.anchor) for r in R.REGIONS}
        # each program's delivery periods: monthly, or multi-month for seasonal programs
        self.program_periods = {
            (r.name, k): program_periods(r, program, self.anchor)
            for r in R.REGIONS
            for k, program in enumerate(r.programs)
        }
        # (deadline, delivery period) that generated required actions point at
        self._upcoming = {
            r.name: (
                iso(self.program_periods[r.name, 0][2].start - timedelta(days=2)),
                f"{r.programs[0].period_prefix}_{self.program_periods[r.name, 0][2].label}",
            )
            for r in R.REGIONS
        }
        self.overlay: dict[int, Mutation] = {}
        self._templates: dict[tuple[str, int, int, str], JSON] = {}
        self._added = 0
        self._refs: dict[str, set[int]] = {}  # partner_reference overrides
        self._connections_added: dict[str, set[int]] = {}  # refIds of added meters
        self._updated: list[tuple[datetime, int]] = []
        self._last_tick = self.anchor

    # ---- identity -------------------------------------------------------------------
    @property
    def count(self) -> int:
        return self.base_count + self._added

    def meter_id(self, index: int) -> str:
        if index < self.base_count:
            return self._codec.encode(index)
        return self._added_codec.encode(index - self.base_count)

    def index_of(self, meter_id: str) -> int | None:
        index = self._codec.decode(meter_id)
        if index is not None and index < self.base_count:
            return index
        added = self._added_codec.decode(meter_id)
        if added is None or self.base_count + added >= self.count:
            return None
        return self.base_count + added

    def _base_reference(self, index: int) -> str | None:
        d = Draw(self.seed, "ref", index)
        kind = d.pick(100)
        if kind < 3:
            return None
        key = index - 1 if kind < 10 and index > 0 else index
        return f"{self._ref_prefix}-{key:07d}"

    def _connections(self, index: int, reference: str | None, created_by: str) -> list[str]:
        """Leap Connect refIds that produced a utility-created meter. Half the time the
        refId is the meter's partner_reference; otherwise it differs (one authorization
        for meters `3k..3k+2`), as when a partner re-keys meters after Connect."""
        if created_by != "UTILITY" or index >= self.base_count:
            return []
        if reference is not None and Draw(self.seed, "connect", index).chance(50):
            return [reference]
        return [f"{self._connect_prefix}-{index // 3:07d}"]

    def indices_for_connection(self, connection_reference: str) -> list[int]:
        """Meters whose `connection_references` hold this refId."""
        found = set(self._connections_added.get(connection_reference, ()))
        found.update(self.indices_for_reference(connection_reference))
        prefix = self._connect_prefix + "-"
        tail = connection_reference[len(prefix) :]
        if connection_reference.startswith(prefix) and tail.isdigit():
            found.update(k for k in range(int(tail) * 3, int(tail) * 3 + 3) if k < self.count)
        return sorted(
            i
            for i in found
            if (c := self.core(i)) and connection_reference in c.connection_references
        )

    def indices_for_reference(self, reference: str) -> list[int]:
        found = set(self._refs.get(reference, ()))
        prefix = self._ref_prefix + "-"
        if reference.startswith(prefix) and reference[len(prefix) :].isdigit():
            key = int(reference[len(prefix) :])
            found.update(k for k in (key, key + 1) if k < self.count)
        return sorted(i for i in found if (c := self.core(i)) and c.partner_reference == reference)

    # ---- time -----------------------------------------------------------------------
    def tick(self) -> datetime:
        """A strictly increasing mutation instant, always after the anchor."""
        now = max(datetime.now(UTC), self._last_tick + timedelta(microseconds=1))
        self._last_tick = now
        return now

    # ---- overlay --------------------------------------------------------------------
    def mutate(self, index: int) -> Mutation:
        """The overlay entry of a meter, stamped with a fresh updated_at."""
        when = self.tick()
        entry = self.overlay.get(index)
        if entry is None:
            entry = self.overlay[index] = Mutation(updated_at=when)
        entry.updated_at = when
        # append-only (ticks increase); superseded entries are skipped and compacted
        self._updated.append((when, index))
        if len(self._updated) > 2 * len(self.overlay) + 1024:
            self._updated = [(t, i) for t, i in self._updated if self.overlay[i].updated_at == t]
        return entry

    def add_meter(
        self,
        region: str | None = None,
        meter_type: str | None = None,
        partner_reference: str | None = None,
        connection_references: list[str] | None = None,
    ) -> int:
        index = self.count
        self._added += 1
        entry = self.mutate(index)
        entry.created_at = entry.updated_at
        entry.region = region
        entry.meter_type = meter_type
        entry.status = "PENDING"
        if partner_reference is not None:
            entry.partner_reference = partner_reference
            self._refs.setdefault(partner_reference, set()).add(index)
        if connection_references:
            entry.connection_references = list(connection_references)
            for ref in connection_references:
                self._connections_added.setdefault(ref, set()).add(index)
        return index

    def modified_after(self, when: datetime) -> list[int] | None:
        """Indexes updated strictly after `when`; None when base meters may qualify."""
        if when < self.anchor:
            return None
        pos = bisect.bisect_right(self._updated, (when, self.count + 1))
        return sorted({i for t, i in self._updated[pos:] if self.overlay[i].updated_at == t})

    def created_after(self, when: datetime) -> list[int] | None:
        if when < self.anchor:
            return None
        return [
            i
            for i in range(self.base_count, self.count)
            if (c := self.overlay[i].created_at) is not None and c > when
        ]

    # ---- generation -----------------------------------------------------------------
    def region_of(self, index: int) -> str:
        """Region of meter `index` without generating the rest (same draw as `core`)."""
        mut = self.overlay.get(index)
        if mut is not None and mut.region is not None:
            return mut.region
        return R.REGIONS[Draw(self.seed, "core", index).pick(len(R.REGIONS))].name

    def core(self, index: int) -> MeterCore | None:
        """Filterable fields of meter `index`, or None if it does not exist (any more)."""
        if not 0 <= index < self.count:
            return None
        mut = self.overlay.get(index)
        if mut is not None and mut.removed:
            return None
        d = Draw(self.seed, "core", index)
        region = R.REGIONS[d.pick(len(R.REGIONS))]
        if mut is not None and mut.region is not None:
            region = R.REGION_BY_NAME[mut.region]
        utility = region.utilities[d.pick(len(region.utilities))]
        zone = utility.load_zones[d.pick(len(utility.load_zones))]
        classification = "COMMERCIAL" if d.chance(20) else "RESIDENTIAL"
        meter_type = R.METER_TYPES[0 if d.chance(60) else (1 if d.chance(25) else 2)]
        load_types = sorted({R.LOAD_TYPES[d.pick(4)], R.LOAD_TYPES[d.pick(len(R.LOAD_TYPES))]})
        roll = d.pick(100)
        status = next(
            s for s, w in zip(R.ENROLLMENT_STATUSES, R.STATUS_WEIGHTS, strict=True) if roll < w
        )
        customer_group = R.CUSTOMER_GROUPS[d.pick(len(R.CUSTOMER_GROUPS))]
        tags = [R.TAGS[d.pick(len(R.TAGS))]] if d.chance(30) else []
        archived = d.chance(2)
        created_by = ("PARTNER", "PARTNER", "UTILITY", "LEAP")[d.pick(4)]
        age = timedelta(days=30 + d.pick(900), seconds=d.pick(86400))
        created_at = self.anchor - age
        updated_at = created_at + age * d.pick(1000) / 1000
        slot = d.pick(1 << 30)
        reference = self._base_reference(index)
        if index >= self.base_count:
            created_by, archived, tags = "PARTNER", False, []
        if mut is not None:
            if mut.created_at is not None:
                created_at = mut.created_at
            if mut.partner_reference is not None:
                reference = mut.partner_reference
            meter_type = mut.meter_type or meter_type
            status = mut.status or status
            archived = archived if mut.is_archived is None else mut.is_archived
            updated_at = mut.updated_at
        connections = self._connections(index, reference, created_by)
        if mut is not None and mut.connection_references is not None:
            connections = list(mut.connection_references)
        core = MeterCore(
            index, self.meter_id(index), region, utility, zone, reference, connections,
            classification, meter_type, load_types, status, customer_group, tags, archived,
            created_by, created_at, updated_at, slot, [], [], [],
        )  # fmt: skip
        self._enrollment(core, d, mut)
        return core

    def _template(self, region: R.Region, program: int, offset: int, status: str) -> JSON:
        key = (region.name, program, offset, status)
        entry = self._templates.get(key)
        if entry is None:
            period = self.program_periods[region.name, program][PERIOD_OFFSETS.index(offset)]
            entry = self._templates[key] = program_entry(region.programs[program], period, status)
        return entry

    def programs(self, c: MeterCore) -> list[JSON]:
        """program_enrollment of a meter: one entry per monthly period, plus overlay windows."""
        groups = self.groups_by_region[c.region.name]
        out = []
        for offset in PERIOD_OFFSETS:
            entry = dict(self._template(c.region, 0, offset, c.status))
            if c.status in GROUPED_STATUSES and groups:
                grp = groups[(c.group_slot + offset) % len(groups)]
                entry["market_group_id"] = grp.market_group_id
                entry["market_group_name"] = grp.name
            out.append(entry)
        if len(c.region.programs) > 1 and c.group_slot % 10 < 3:
            out.extend(dict(self._template(c.region, 1, o, "INELIGIBLE")) for o in PERIOD_OFFSETS)
        mut = self.overlay.get(c.index)
        for extra in () if mut is None else mut.programs.values():
            same = [
                k
                for k, e in enumerate(out)
                if e["program_identifier"] == extra["program_identifier"]
                and e["delivery_period_start_date_time"] == extra["delivery_period_start_date_time"]
            ]
            if same:
                out[same[0]] = dict(extra)
            else:
                out.append(dict(extra))
        return out

    def _enrollment(self, c: MeterCore, d: Draw, mut: Mutation | None) -> None:
        periods = self.periods[c.region.name]
        primary = c.region.programs[0]
        deadline, period_name = self._upcoming[c.region.name]
        if c.status in ("ELIGIBLE", "PENDING", "INELIGIBLE") and d.chance(60):
            kind, code, text = R.PARTNER_ACTIONS[d.pick(len(R.PARTNER_ACTIONS))]
            c.partner_actions.append(
                action(primary.identifier, period_name, deadline, kind, code, text)
            )
        if c.status in ("ELIGIBLE", "PENDING") and d.chance(40):
            kind, code, text = R.LEAP_ACTIONS[d.pick(len(R.LEAP_ACTIONS))]
            c.leap_actions.append(
                action(primary.identifier, period_name, deadline, kind, code, text)
            )
        since = iso(c.created_at.replace(microsecond=0))
        if c.status == "NOT_PARTICIPATING":
            stop = iso(periods[0].start)
            c.participation = [
                {"participation_preference": "PARTICIPATE", "start_time": since, "end_time": stop},
                {
                    "participation_preference": "DISENROLL",
                    "start_time": stop,
                    "end_time": FAR_FUTURE,
                    "reason": "Customer left the program",
                },
            ]
        else:
            c.participation = [
                {
                    "participation_preference": "PARTICIPATE",
                    "start_time": since,
                    "end_time": FAR_FUTURE,
                }
            ]
            if c.status == "ACTIVE" and d.chance(10):
                idle = periods[1].start + timedelta(days=9)
                c.participation.append(
                    {
                        "participation_preference": "IDLE",
                        "start_time": iso(idle),
                        "end_time": iso(idle + timedelta(days=3)),
                        "reason": "Customer vacation",
                    }
                )
        if mut is None:
            return
        if mut.participation is not None:
            c.participation = [dict(p) for p in mut.participation]
        if mut.partner_actions is not None:
            c.partner_actions = [dict(a) for a in mut.partner_actions]
        if mut.leap_actions is not None:
            c.leap_actions = [dict(a) for a in mut.leap_actions]

    # ---- rendering ------------------------------------------------------------------
    def identifiers(self, c: MeterCore) -> JSON:
        out: JSON = {"meter_id": c.meter_id}
        if c.partner_reference is not None:
            out["partner_reference"] = c.partner_reference
        out.update(
            transmission_region=c.region.name,
            customer_classification=c.classification,
            load_types=list(c.load_types),
            meter_type=c.meter_type,
            connection_references=list(c.connection_references),
            customer_group=c.customer_group,
            tags=list(c.tags),
            is_archived=c.is_archived,
        )
        return out

    def audit(self, c: MeterCore) -> JSON:
        return {
            "created_by": c.created_by,
            "created_at": iso(c.created_at),
            "updated_at": iso(c.updated_at),
        }

    def meter_record(self, index: int) -> JSON | None:
        """Meter Details v2 record of meter `index` (None if it does not exist)."""
        c = self.core(index)
        if c is None:
            return None
        out = self.identifiers(c)
        out.update(render_meter(self.seed, c.index, c.region, c.utility, c.load_zone,
                                c.classification, c.meter_type))  # fmt: skip
        out["audit"] = self.audit(c)
        return out

    def enrollment_record(self, index: int) -> JSON | None:
        """Meter Enrollment v2 record of meter `index` (None if it does not exist)."""
        c = self.core(index)
        return None if c is None else self.enrollment_of(c)

    def enrollment_of(self, c: MeterCore) -> JSON:
        out = self.identifiers(c)
        out["audit"] = self.audit(c)
        out.update(
            global_enrollment_status=c.status,
            participation_preferences=c.participation,
            program_enrollment=self.programs(c),
            required_actions={"partner": c.partner_actions, "leap": c.leap_actions},
        )
        return out

    def roster_entry(self, group: Group, start: datetime, end: datetime) -> JSON:
        """The program_enrollment entry a group.updated window [start, end) adds to its
        members: a delivery period from the same first day to the start of its last day."""
        region = R.REGION_BY_NAME[group.region]
        primary = region.programs[0]
        period = delivery_period_of_window(region, start, end)
        entry = program_entry(primary, period, "ACTIVE")
        entry["market_group_id"] = group.market_group_id
        entry["market_group_name"] = group.name
        return entry
