"""Bearer API keys with scopes `read` and `ops` (ops may also read)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.config import Scope, Settings
from app.problems import Problem

bearer = HTTPBearer(auto_error=False, description="An API key from API_KEYS")


def secret_matches(candidate: bytes, secrets: Iterable[bytes]) -> bool:
    """Constant-time membership test: every secret is compared, whatever matches."""
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(candidate, secret)
    return found


def scope_of(settings: Settings, token: str) -> Scope | None:
    candidate = token.encode("utf-8", "surrogateescape")
    granted: Scope | None = None
    for key in settings.api_keys:
        if hmac.compare_digest(candidate, key.key.get_secret_value().encode()):
            # ops wins over read if the same key was listed twice.
            granted = "ops" if key.scope == "ops" or granted == "ops" else "read"
    return granted


def _require(needed: Scope) -> Callable[..., Awaitable[Scope]]:
    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Scope:
        unauthorized = Problem(
            401, "a valid API key is required", headers={"WWW-Authenticate": "Bearer"}
        )
        if credentials is None:
            raise unauthorized
        scope = scope_of(request.app.state.settings, credentials.credentials)
        if scope is None:
            raise unauthorized
        if needed == "ops" and scope != "ops":
            raise Problem(403, "this API key lacks the ops scope")
        return scope

    return check


ReadScope = Annotated[Scope, Depends(_require("read"))]
OpsScope = Annotated[Scope, Depends(_require("ops"))]
