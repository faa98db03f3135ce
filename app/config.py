"""All configuration, read from the environment (and `.env`) into one Settings class.

Every variable of the product contract is here. List-like values are comma-separated
strings in the environment, so those fields opt out of pydantic-settings' JSON decoding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.markets import DEFAULT_MARKET_TIMEZONES, parse_market_timezones

Scope = Literal["read", "ops"]
SCOPES: tuple[Scope, ...] = ("read", "ops")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$")
_DB_SCHEMES = {"postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg"}
# Shared secrets and our own API keys: long enough that guessing over HTTP is hopeless.
# LEAP_API_KEY is Leap's credential, taken as given.
MIN_SECRET_CHARS = 16


class ApiMode(StrEnum):
    """`api` with LEAP_API_KEY (enrichment and reconciliation), else webhook-only."""

    API = "api"
    WEBHOOK_ONLY = "webhook-only"


@dataclass(frozen=True, slots=True)
class ApiKey:
    scope: Scope
    key: SecretStr


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    database_url: str | None = None
    leap_webhook_header: str = "X-Webhook-Secret"
    leap_webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    leap_api_base_url: str = "https://api.leap.energy"
    leap_api_key: SecretStr | None = None
    api_keys: Annotated[list[ApiKey], NoDecode] = Field(default_factory=list)
    webhook_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024**3)
    sync_interval_seconds: int = Field(default=900, ge=1)
    full_sync_interval_seconds: int = Field(default=86400, ge=1)
    # Health verdict of /v1/sync/status (docs/operations.md): no webhook event for this
    # long is a problem, and so is a reconciliation lag above SYNC_LAG_MAX_SECONDS
    # (unset: three SYNC_INTERVAL_SECONDS).
    webhook_quiet_seconds: int = Field(default=6 * 3600, ge=60)
    sync_lag_max_seconds: int | None = Field(default=None, ge=60)
    # Webhook event bodies are pruned after this many days; the rows (ids, hashes,
    # statuses) stay, so a late redelivery is still recognised as a duplicate.
    event_retention_days: int = Field(default=30, ge=1, le=36500)
    # Changes in the feed (/v1/changes) are kept this many days (an older cursor is a 410).
    change_retention_days: int = Field(default=7, ge=1, le=36500)
    market_timezones: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_MARKET_TIMEZONES)
    )
    # Not in the contract's table: where generated secrets and embedded data live.
    state_dir: Path = Path(".meter-sync")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # auto: readable text on a terminal, JSON lines otherwise (files, containers, journald).
    log_format: Literal["auto", "json", "text"] = "auto"

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        """`debug` and `DEBUG` alike; formats are lower case."""
        if not isinstance(value, str):
            return value
        return value.strip().upper() if value.strip().upper() in _LEVELS else value.strip().lower()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in _DB_SCHEMES or (not parts.hostname and not parts.query):
            raise ValueError("must be a postgresql:// URL with a host")
        # One driver for the whole service: asyncpg (see docs/decisions.md).
        return "postgresql+asyncpg" + value.strip()[len(parts.scheme) :]

    @field_validator("leap_webhook_header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER_NAME.match(value):
            raise ValueError("must be an HTTP header name (letters, digits, '-')")
        return value

    @field_validator("leap_webhook_secrets", mode="before")
    @classmethod
    def _secrets(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("leap_webhook_secrets")
    @classmethod
    def _secrets_long_enough(cls, value: list[SecretStr]) -> list[SecretStr]:
        _require_length((s.get_secret_value() for s in value), "each secret")
        return value

    @field_validator("leap_api_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("leap_api_key", mode="before")
    @classmethod
    def _api_key(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _api_keys(cls, value: object) -> object:
        items = _split_commas(value)
        if not isinstance(items, list):
            return items
        keys: list[ApiKey] = []
        for item in items:
            if isinstance(item, ApiKey):
                keys.append(item)
                continue
            scope, sep, key = str(item).partition(":")
            if not sep or not key:
                raise ValueError("each entry must be scope:key")
            if scope not in SCOPES:
                raise ValueError(f"unknown scope {scope!r} (use read or ops)")
            keys.append(ApiKey(scope=scope, key=SecretStr(key)))
        _require_length((k.key.get_secret_value() for k in keys), "each key")
        return keys

    @field_validator("market_timezones", mode="before")
    @classmethod
    def _zones(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_market_timezones(value)
        return value

    @property
    def lag_limit_seconds(self) -> int:
        return self.sync_lag_max_seconds or 3 * self.sync_interval_seconds

    @property
    def api_mode(self) -> ApiMode:
        return ApiMode.API if self.leap_api_key is not None else ApiMode.WEBHOOK_ONLY


def _require_length(values: Iterable[str], what: str) -> None:
    """Refuse a short value without echoing any of it (the message is logged)."""
    shortest = min((len(v) for v in values), default=MIN_SECRET_CHARS)
    if shortest < MIN_SECRET_CHARS:
        raise ValueError(
            f"{what} must be at least {MIN_SECRET_CHARS} characters (one has {shortest})"
        )


class ConfigError(Exception):
    """A bad setting, described in one line."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            problems.append(f"{field}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
