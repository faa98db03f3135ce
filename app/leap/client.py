"""Client for Leap's v2 meter read API (the four endpoints reconciliation uses).

`LeapClient` wraps one `httpx.AsyncClient`:

- bearer auth with the partner's API key (never logged);
- at most `max_concurrency` requests in flight (an `asyncio.Semaphore`; a request waiting
  out a backoff does not hold a slot);
- retries (tenacity) of 429, 408, 5xx, timeouts and connection errors (refused, reset,
  dropped mid-response), `max_attempts` attempts in all, with exponential backoff and
  full jitter, never sooner than a `Retry-After` asks (seconds or HTTP-date), every wait
  capped at `backoff_cap`; then `LeapUnavailable` with the last status;
- 401/403 raise `LeapAuthError` at once, other 4xx `LeapRequestError`, a 2xx body that
  is not the documented shape `LeapResponseError`; 404 on a single-meter read is None.

`on_call(endpoint, status, seconds)` is called after every HTTP attempt (status None
when no response arrived), for metrics. Endpoint names: `get_meter`, `get_enrollment`,
`search_meters`, `search_enrollments`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from app.leap.errors import (
    LeapAuthError,
    LeapError,
    LeapRequestError,
    LeapResponseError,
    LeapUnavailable,
    Retryable,
)
from app.leap.models import (
    EnrollmentPage,
    LeapEnrollment,
    LeapMeter,
    MeterFilter,
    MeterPage,
)

__all__ = [
    "LeapAuthError",
    "LeapClient",
    "LeapError",
    "LeapRequestError",
    "LeapResponseError",
    "LeapUnavailable",
    "OnCall",
    "Sleep",
    "backoff_delay",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
OnCall = Callable[[str, int | None, float], None]
ModelT = TypeVar("ModelT", bound=BaseModel)

RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
# httpx transport errors that a retry can cure; the others (UnsupportedProtocol,
# LocalProtocolError, ProxyError) mean our own request or configuration is wrong.
_RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


# ---- backoff ------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delay-seconds or an HTTP-date.

    None when absent or unreadable; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number `attempt` (1 = the first retry).

    Full jitter: uniform in [0, min(cap, base * 2**(attempt - 1))]. A `Retry-After`
    raises that to at least what the server asked. The result never exceeds `cap`.
    """
    exponent = min(max(attempt - 1, 0), 62)  # keep 2**n finite for absurd attempt counts
    ceiling = min(cap, base * (2.0**exponent))
    delay = rand() * ceiling
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(0.0, min(delay, cap))


# ---- client -------------------------------------------------------------------------------


def _error_fields(response: httpx.Response) -> tuple[str | None, dict[str, Any] | None]:
    """Leap's v2 error body `{"title", "status", "details"}`, when that is what came."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    title = body.get("title")
    details = body.get("details")
    return (
        title if isinstance(title, str) else None,
        details if isinstance(details, dict) else None,
    )


class LeapClient:
    """Async client for Leap's meter and enrollment read endpoints. Use as
    `async with LeapClient(url, key) as leap: ...` or call `aclose()` when done."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10,
        max_concurrency: int = 8,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_cap: float = 30,
        transport: httpx.AsyncBaseTransport | None = None,
        on_call: OnCall | None = None,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not api_key:
            raise ValueError("a Leap API key is required")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if backoff_base < 0 or backoff_cap < 0:
            raise ValueError("backoff_base and backoff_cap must not be negative")
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._on_call = on_call
        self._sleep = sleep
        self._rand = rand
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": "meter-sync",
            },
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- the four endpoints -------------------------------------------------------------

    async def get_meter(self, meter_id: uuid.UUID | str) -> LeapMeter | None:
        """`GET /v2/meters/{meter_id}`; None if Leap does not know the meter."""
        path = f"/v2/meters/{quote(str(meter_id), safe='')}"
        response = await self._request("get_meter", "GET", path, none_on_404=True)
        return None if response is None else self._parse("get_meter", response, LeapMeter)

    async def get_enrollment(self, meter_id: uuid.UUID | str) -> LeapEnrollment | None:
        """`GET /v2/meters/{meter_id}/enrollments`; None if Leap does not know the meter."""
        path = f"/v2/meters/{quote(str(meter_id), safe='')}/enrollments"
        response = await self._request("get_enrollment", "GET", path, none_on_404=True)
        if response is None:
            return None
        return self._parse("get_enrollment", response, LeapEnrollment)

    async def search_meters(self, filter: MeterFilter | None = None) -> MeterPage:
        """One page of `POST /v2/meters/search`."""
        body = (filter or MeterFilter()).to_body()
        response = await self._request(
            "search_meters", "POST", "/v2/meters/search", json=body, none_on_404=True
        )
        # Leap answers a search that finds nothing with 404: an empty last page.
        return (
            MeterPage() if response is None else self._parse("search_meters", response, MeterPage)
        )

    async def search_enrollments(self, filter: MeterFilter | None = None) -> EnrollmentPage:
        """One page of `POST /v2/meters/enrollments/search`."""
        body = (filter or MeterFilter()).to_body()
        path = "/v2/meters/enrollments/search"
        response = await self._request(
            "search_enrollments", "POST", path, json=body, none_on_404=True
        )
        if response is None:
            return EnrollmentPage()
        return self._parse("search_enrollments", response, EnrollmentPage)

    async def iter_meter_pages(self, filter: MeterFilter | None = None) -> AsyncIterator[MeterPage]:
        """Every page of a meter search, following `next_page_token`.

        Starts from `filter.page_token` when set, so a run that stored the token of the
        last page it finished resumes with `filter.with_page_token(token)`.
        """
        current = filter or MeterFilter()
        while True:
            page = await self.search_meters(current)
            yield page
            token = self._next_token("search_meters", current, page.next_page_token)
            if token is None:
                return
            current = current.with_page_token(token)

    async def iter_enrollment_pages(
        self, filter: MeterFilter | None = None
    ) -> AsyncIterator[EnrollmentPage]:
        """Every page of an enrollment search, following `next_page_token` (see
        `iter_meter_pages` for resuming)."""
        current = filter or MeterFilter()
        while True:
            page = await self.search_enrollments(current)
            yield page
            token = self._next_token("search_enrollments", current, page.next_page_token)
            if token is None:
                return
            current = current.with_page_token(token)

    # ---- plumbing -----------------------------------------------------------------------

    @staticmethod
    def _next_token(endpoint: str, current: MeterFilter, token: str | None) -> str | None:
        if token is not None and token == current.page_token:
            raise LeapResponseError(
                f"Leap {endpoint} returned the page token it was given; stopping to avoid a loop",
                endpoint=endpoint,
                status=200,
            )
        return token

    def _parse(self, endpoint: str, response: httpx.Response, model: type[ModelT]) -> ModelT:
        try:
            data = response.json()
        except ValueError:
            raise LeapResponseError(
                f"Leap {endpoint} answered {response.status_code} with a body that is not JSON",
                endpoint=endpoint,
                status=response.status_code,
            ) from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors(include_url=False)[:5]
            )
            raise LeapResponseError(
                f"Leap {endpoint} answer is not a valid {model.__name__} "
                f"({exc.error_count()} problems: {problems})",
                endpoint=endpoint,
                status=response.status_code,
            ) from exc

    def _record(self, endpoint: str, status: int | None, seconds: float) -> None:
        if self._on_call is None:
            return
        try:
            self._on_call(endpoint, status, seconds)
        except Exception:
            log.exception("leap on_call hook failed", extra={"endpoint": endpoint})

    async def _request(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        none_on_404: bool = False,
    ) -> httpx.Response | None:
        """The 2xx response (None for a 404 when `none_on_404`), retrying what can be.

        Retries are tenacity's: `Retryable` marks an attempt worth repeating, and the
        wait is `backoff_delay` (full jitter, at least what a `Retry-After` asked).
        """

        def wait(state: RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            retry_after = failure.retry_after if isinstance(failure, Retryable) else None
            return backoff_delay(
                state.attempt_number,
                base=self.backoff_base,
                cap=self.backoff_cap,
                retry_after=retry_after,
                rand=self._rand,
            )

        def before_sleep(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            log.debug(
                "leap call failed, retrying",
                extra={
                    "endpoint": endpoint,
                    "reason": str(failure),
                    "attempt": state.attempt_number,
                    "retry_in_seconds": round(state.upcoming_sleep, 3),
                },
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait,
            retry=retry_if_exception_type(Retryable),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(endpoint, method, path, json, none_on_404)
        except Retryable as last:
            raise LeapUnavailable(
                f"Leap {endpoint} failed {self.max_attempts} times; last: {last}",
                endpoint=endpoint,
                status=last.status,
                attempts=self.max_attempts,
            ) from last.__cause__
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _attempt(
        self,
        endpoint: str,
        method: str,
        path: str,
        json: dict[str, Any] | None,
        none_on_404: bool,
    ) -> httpx.Response | None:
        """One HTTP attempt: the response, None, a final error, or `Retryable`."""
        async with self._semaphore:
            began = time.perf_counter()
            try:
                response = await self._http.request(method, path, json=json)
            except _RETRYABLE_ERRORS as exc:
                self._record(endpoint, None, time.perf_counter() - began)
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                raise Retryable(reason, status=None) from exc
            except httpx.TransportError as exc:
                self._record(endpoint, None, time.perf_counter() - began)
                raise LeapRequestError(
                    f"cannot send Leap {endpoint} request: {type(exc).__name__}: {exc}",
                    endpoint=endpoint,
                ) from exc
        status = response.status_code
        self._record(endpoint, status, time.perf_counter() - began)
        if 200 <= status < 300:
            return response
        if status == 404 and none_on_404:
            return None
        self._raise_for_final(endpoint, method, path, response)
        raise Retryable(
            f"HTTP {status}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    @staticmethod
    def _raise_for_final(endpoint: str, method: str, path: str, response: httpx.Response) -> None:
        """Raise for a non-2xx answer that retrying cannot fix; return if it can."""
        status = response.status_code
        if status in RETRYABLE_STATUSES:
            return
        title, details = _error_fields(response)
        if status in (401, 403):
            what = "rejected the API key" if status == 401 else "refused access"
            raise LeapAuthError(
                f"Leap {what} (HTTP {status}{f' {title}' if title else ''}) on {method} {path}: "
                "check LEAP_API_KEY and the key's permissions",
                endpoint=endpoint,
                status=status,
            )
        if 400 <= status < 500:
            raise LeapRequestError(
                f"Leap rejected {endpoint} (HTTP {status}{f': {title}' if title else ''})",
                endpoint=endpoint,
                status=status,
                title=title,
                details=details,
            )
        raise LeapResponseError(
            f"Leap {endpoint} answered unexpected HTTP {status}",
            endpoint=endpoint,
            status=status,
        )
