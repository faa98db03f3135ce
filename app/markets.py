"""Markets and their time zones: the region -> IANA zone table and its parsing.

A trade date is a calendar day in its market's zone (see app/groups/trade_dates.py).
`MARKET_TIMEZONES` (config) overrides entries of the default table.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_MARKET_TIMEZONES",
    "UTC_ZONE",
    "load_zone",
    "parse_market_timezones",
    "zone_for",
]

# Read-only so no caller can change the defaults for everyone else.
DEFAULT_MARKET_TIMEZONES: Mapping[str, str] = MappingProxyType(
    {
        "CAISO": "America/Los_Angeles",
        "WECC_PC": "America/Los_Angeles",
        "ERCOT": "America/Chicago",
        "SERC": "America/Chicago",
        "NYISO": "America/New_York",
        "ISONE": "America/New_York",
        "PJM": "America/New_York",
        "WECC_SW": "America/Phoenix",
    }
)

UTC_ZONE = ZoneInfo("UTC")


def load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    # ZoneInfoNotFoundError is a KeyError, not a ValueError. Absolute paths, ".." and
    # files under the zoneinfo dir that are not zones ("zone.tab") raise ValueError.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None


def parse_market_timezones(text: str) -> dict[str, str]:
    """Parse "REGION=Zone/Name,REGION=Zone/Name" and merge it over the defaults.

    Region names are upper-cased; blank input gives the defaults unchanged.
    """
    zones = dict(DEFAULT_MARKET_TIMEZONES)
    seen: set[str] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        region, sep, zone = item.partition("=")
        region, zone = region.strip().upper(), zone.strip()
        if not sep or not region or not zone:
            raise ValueError(f"expected REGION=Area/City, got {item!r}")
        if region in seen:
            raise ValueError(f"region {region!r} is listed more than once")
        seen.add(region)
        load_zone(zone)
        zones[region] = zone
    return zones


def zone_for(region: str | None, zones: Mapping[str, str] = DEFAULT_MARKET_TIMEZONES) -> ZoneInfo:
    """The market time zone of a transmission region; UTC when the region is unknown."""
    if not region:
        return UTC_ZONE
    name = zones.get(region) or zones.get(region.strip().upper())
    return ZoneInfo(name) if name else UTC_ZONE
