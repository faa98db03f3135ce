"""All configuration, read from the environment (and `.env`) into one Settings class.

Every variable of the product contract is here. List-like values are comma-separated
strings in the environment, so those fields opt out of pydantic-settings' JSON decoding.
"""

from __future__ import annotations

import re
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
        return keys

    @field_validator("market_timezones", mode="before")
    @classmethod
    def _zones(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_market_timezones(value)
        return value

    @property
    def api_mode(self) -> ApiMode:
        return ApiMode.API if self.leap_api_key is not None else ApiMode.WEBHOOK_ONLY

    def masked(self) -> dict[str, str]:
        """Effective values for `meter-sync config`, with every secret masked."""
        secrets = self.leap_webhook_secrets
        return {
            "DATABASE_URL": _mask_url(self.database_url) if self.database_url else "(embedded)",
            "LEAP_WEBHOOK_HEADER": self.leap_webhook_header,
            "LEAP_WEBHOOK_SECRETS": ", ".join(_mask(s) for s in secrets) or "(unset)",
            "LEAP_API_BASE_URL": self.leap_api_base_url,
            "LEAP_API_KEY": _mask(self.leap_api_key) if self.leap_api_key else "(unset)",
            "API_KEYS": ", ".join(f"{k.scope}:{_mask(k.key)}" for k in self.api_keys) or "(unset)",
            "WEBHOOK_MAX_BODY_BYTES": str(self.webhook_max_body_bytes),
            "SYNC_INTERVAL_SECONDS": str(self.sync_interval_seconds),
            "FULL_SYNC_INTERVAL_SECONDS": str(self.full_sync_interval_seconds),
            "EVENT_RETENTION_DAYS": str(self.event_retention_days),
            "CHANGE_RETENTION_DAYS": str(self.change_retention_days),
            "MARKET_TIMEZONES": ",".join(f"{r}={z}" for r, z in self.market_timezones.items()),
            "STATE_DIR": str(self.state_dir),
            "LOG_LEVEL": self.log_level,
            "mode": self.api_mode,
        }


def _mask(secret: SecretStr) -> str:
    value = secret.get_secret_value()
    return "****" if len(value) < 12 else f"{value[:2]}****{value[-2:]}"


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":****@", 1)
    return url


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
