"""The repository root, the secrets and keys tests use, and Settings built from them."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from app.config import ApiKey, Settings

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "test-webhook-secret-one"
WEBHOOK_SECRET_2 = "test-webhook-secret-two"
READ_KEY = "test-read-key-0123456"
OPS_KEY = "test-ops-key-0123456"


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for one test: its database, the test secret and keys, a fresh state dir."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "leap_webhook_secrets": [SecretStr(WEBHOOK_SECRET)],
        "api_keys": [ApiKey("read", SecretStr(READ_KEY)), ApiKey("ops", SecretStr(OPS_KEY))],
        "state_dir": Path(tempfile.mkdtemp(prefix="meter-sync-state-")),
    }
    values.update(overrides)
    return Settings(**values)
