"""First start without credentials: make a webhook secret and an ops key, keep them.

They live in STATE_DIR/credentials.json (mode 0600) so later starts reuse them. Values
configured in the environment always win and are never written here.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from app.config import ApiKey, Settings

CREDENTIALS_FILE = "credentials.json"


def _load(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _save(path: Path, data: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    tmp.replace(path)


def ensure_credentials(settings: Settings) -> tuple[Settings, list[str]]:
    """Fill in missing secrets; the returned lines are shown once, when values are made."""
    need_secret = not settings.leap_webhook_secrets
    need_key = not settings.api_keys
    if not need_secret and not need_key:
        return settings, []
    path = settings.state_dir / CREDENTIALS_FILE
    stored = _load(path)
    made: list[str] = []
    if need_secret and "webhook_secret" not in stored:
        stored["webhook_secret"] = secrets.token_urlsafe(32)
        made.append("webhook_secret")
    if need_key and "ops_api_key" not in stored:
        stored["ops_api_key"] = secrets.token_urlsafe(32)
        made.append("ops_api_key")
    if made:
        _save(path, stored)
    update: dict[str, object] = {}
    if need_secret:
        update["leap_webhook_secrets"] = [SecretStr(stored["webhook_secret"])]
    if need_key:
        update["api_keys"] = [ApiKey(scope="ops", key=SecretStr(stored["ops_api_key"]))]
    resolved = settings.model_copy(update=update)
    return resolved, _announcement(resolved, stored, made, path)


def stored_credentials(settings: Settings) -> tuple[Settings, frozenset[str]]:
    """Settings with the credentials a previous start generated filled in (nothing is
    made or written), and the names of the variables they stand for."""
    stored = _load(settings.state_dir / CREDENTIALS_FILE)
    update: dict[str, object] = {}
    if not settings.leap_webhook_secrets and "webhook_secret" in stored:
        update["leap_webhook_secrets"] = [SecretStr(stored["webhook_secret"])]
    if not settings.api_keys and "ops_api_key" in stored:
        update["api_keys"] = [ApiKey(scope="ops", key=SecretStr(stored["ops_api_key"]))]
    names = {"leap_webhook_secrets": "LEAP_WEBHOOK_SECRETS", "api_keys": "API_KEYS"}
    return settings.model_copy(update=update), frozenset(names[k] for k in update)


def _announcement(
    settings: Settings, stored: dict[str, str], made: list[str], path: Path
) -> list[str]:
    if not made:
        return []
    lines = [f"First start: generated credentials, kept in {path} (shown only this once)."]
    if "webhook_secret" in made:
        lines += [
            f"  Webhook secret: {stored['webhook_secret']}",
            "  Register the receiver with Leap (POST /v1.1/webhooks, or the Partner Portal):",
            "    receiver_url: https://<your-host>/webhooks/leap  (Leap requires HTTPS on "
            "443, 8443 or 8843)",
            f'    headers: [{{"name": "{settings.leap_webhook_header}", '
            f'"value": "<the secret above>"}}]',
        ]
    if "ops_api_key" in made:
        lines.append(f"  Ops API key (Authorization: Bearer ...): {stored['ops_api_key']}")
    return lines
