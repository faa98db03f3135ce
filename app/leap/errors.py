"""What can go wrong talking to Leap's API, as exceptions the callers branch on."""

from __future__ import annotations

from typing import Any


class LeapError(Exception):
    """Any failure talking to Leap. `endpoint` is the call's name, `status` the HTTP
    status of the answer that caused it (None when there was none)."""

    def __init__(self, message: str, *, endpoint: str, status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class LeapAuthError(LeapError):
    """Leap answered 401 or 403: the API key is missing, wrong, revoked or lacks rights."""


class LeapRequestError(LeapError):
    """Leap rejected the request (a 4xx other than 401/403/408/429, or a 404 on search).

    `title` and `details` are Leap's error body fields when it sent them.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None = None,
        title: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=status)
        self.title = title
        self.details = details or {}


class LeapResponseError(LeapError):
    """Leap answered 2xx with a body that is not the documented shape (or not JSON)."""


class Retryable(Exception):
    """An attempt failed in a way another attempt may cure (429, 5xx, timeout, network)."""

    def __init__(self, reason: str, *, status: int | None, retry_after: float | None = None):
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after


class LeapUnavailable(LeapError):
    """Every attempt failed with a retryable error (429, 5xx, timeout, connection).

    `status` is the last attempt's HTTP status (None if it got no response), `attempts`
    how many were made; the last transport error, if any, is the `__cause__`.
    """

    def __init__(self, message: str, *, endpoint: str, status: int | None, attempts: int) -> None:
        super().__init__(message, endpoint=endpoint, status=status)
        self.attempts = attempts
