"""What `meter-sync config` prints: each effective value, never a character of a secret,
and where it came from (environment, `.env`, the generated credentials file, or default).

The origin is worked out the way pydantic-settings reads its sources (the environment
wins over `.env`, names are case-insensitive), rather than by instrumenting the sources:
it is only asked for by this command.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from app.config import Settings

ENVIRONMENT = "environment"
DOTENV = ".env"
GENERATED = "generated file"
DEFAULT = "default"
# A password given as a query parameter (`?password=...`) rather than in the netloc.
_QUERY_PASSWORD = re.compile(r"(?i)(password=)[^&]*")


def origins(
    generated: frozenset[str] = frozenset(),
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = None,
) -> dict[str, str]:
    """Variable name -> where its value came from, for every Settings field."""
    env = {k.lower() for k in (os.environ if environ is None else environ)}
    dotenv_path = env_file or Path(str(Settings.model_config.get("env_file") or ".env"))
    dotenv = (
        {k.lower() for k in dotenv_values(dotenv_path)} if dotenv_path.is_file() else set[str]()
    )
    found: dict[str, str] = {}
    for field in Settings.model_fields:
        name = field.upper()
        if field in env:
            found[name] = ENVIRONMENT
        elif field in dotenv:
            found[name] = DOTENV
        elif name in generated:
            found[name] = GENERATED
        else:
            found[name] = DEFAULT
    return found


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        url = url.replace(f":{parts.password}@", ":****@", 1)
    return _QUERY_PASSWORD.sub(r"\1****", url)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def values(settings: Settings) -> dict[str, str]:
    """Effective values; secrets are described (how many, which scopes), never shown."""
    keys = settings.api_keys
    return {
        "DATABASE_URL": mask_url(settings.database_url) if settings.database_url else "(embedded)",
        "LEAP_WEBHOOK_HEADER": settings.leap_webhook_header,
        "LEAP_WEBHOOK_SECRETS": _count(len(settings.leap_webhook_secrets), "secret")
        if settings.leap_webhook_secrets
        else "(unset: generated on first serve)",
        "LEAP_API_BASE_URL": settings.leap_api_base_url,
        "LEAP_API_KEY": "(set)" if settings.leap_api_key else "(unset)",
        "API_KEYS": f"{_count(len(keys), 'key')}: {', '.join(k.scope for k in keys)}"
        if keys
        else "(unset: an ops key generated on first serve)",
        "WEBHOOK_MAX_BODY_BYTES": str(settings.webhook_max_body_bytes),
        "SYNC_INTERVAL_SECONDS": str(settings.sync_interval_seconds),
        "FULL_SYNC_INTERVAL_SECONDS": str(settings.full_sync_interval_seconds),
        "WEBHOOK_QUIET_SECONDS": str(settings.webhook_quiet_seconds),
        "SYNC_LAG_MAX_SECONDS": str(settings.lag_limit_seconds),
        "EVENT_RETENTION_DAYS": str(settings.event_retention_days),
        "CHANGE_RETENTION_DAYS": str(settings.change_retention_days),
        "MARKET_TIMEZONES": ",".join(f"{r}={z}" for r, z in settings.market_timezones.items()),
        "STATE_DIR": str(settings.state_dir),
        "LOG_LEVEL": settings.log_level,
        "LOG_FORMAT": settings.log_format,
    }


def lines(settings: Settings, generated: frozenset[str] = frozenset()) -> Iterator[str]:
    """`NAME=value  (origin)` per variable, then the resulting mode."""
    where = origins(generated)
    for name, value in values(settings).items():
        yield f"{name}={value}  ({where.get(name, DEFAULT)})"
    yield f"mode={settings.api_mode}"
