"""Delivers webhook events the way Leap does, with a time-scaled retry schedule.

Each subscription gets the envelope as a JSON POST to its `receiver_url` with its custom
headers. A delivery succeeds on any 2xx within `timeout` seconds; otherwise it is retried
after the next delay of `schedule` (Leap: immediate, 1m, 2m, 4m, 8m, 16m, 29m, 1h, 2h,
4h; ten tries, then the event is dropped), each delay multiplied by `time_factor`.

First tries go out from `concurrency` dispatchers in queue order (or shuffled per batch
of queued events when `shuffle` is set), so with the default single dispatcher the
arrival order is exactly the dispatch order; retries run in their own tasks. With
`duplicate_probability` an event is queued twice under the same webhook_event_id.
Every attempt is recorded in `deliveries`, keyed by (webhook_id, webhook_event_id).
Not thread-safe: use it from the event loop it was started in.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

JSON = dict[str, Any]
LEAP_RETRY_SCHEDULE: tuple[float, ...] = (0, 60, 120, 240, 480, 960, 1740, 3600, 7200, 14400)


@dataclass(frozen=True, slots=True)
class Target:
    webhook_id: str
    receiver_url: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Attempt:
    number: int
    at: datetime
    duplicate: bool
    status_code: int | None
    error: str | None
    response_time_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def as_json(self) -> JSON:
        return {
            "number": self.number,
            "at": self.at.isoformat(),
            "duplicate": self.duplicate,
            "status_code": self.status_code,
            "error": self.error,
            "response_time_ms": self.response_time_ms,
        }


@dataclass(slots=True)
class Delivery:
    webhook_id: str
    event_id: str
    event_type: str
    receiver_url: str
    attempts: list[Attempt] = field(default_factory=list)
    outcome: Literal["pending", "delivered", "dropped"] = "pending"

    def as_json(self) -> JSON:
        return {
            "webhook_id": self.webhook_id,
            "webhook_event_id": self.event_id,
            "webhook_event_type": self.event_type,
            "receiver_url": self.receiver_url,
            "outcome": self.outcome,
            "attempts": [a.as_json() for a in self.attempts],
        }


@dataclass(slots=True)
class _Job:
    target: Target
    envelope: JSON
    body: bytes
    duplicate: bool


class Sender:
    def __init__(
        self,
        *,
        time_factor: float = 1.0,
        timeout: float = 10.0,
        duplicate_probability: float = 0.0,
        shuffle: bool = False,
        seed: int = 0,
        schedule: tuple[float, ...] = LEAP_RETRY_SCHEDULE,
        concurrency: int = 1,
    ) -> None:
        self.time_factor = time_factor
        self.timeout = timeout
        self.duplicate_probability = duplicate_probability
        self.shuffle = shuffle
        self.schedule = schedule
        self.concurrency = max(1, concurrency)
        self._rng = random.Random(seed)
        self.deliveries: dict[tuple[str, str], Delivery] = {}
        self.counts: Counter[str] = Counter()
        self._queue: asyncio.Queue[_Job] | None = None
        self._client: httpx.AsyncClient | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._idle: asyncio.Event | None = None

    async def start(self) -> None:
        if self._client is not None:
            return
        self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        self._queue = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers = [asyncio.create_task(self._dispatch()) for _ in range(self.concurrency)]

    async def aclose(self) -> None:
        for task in [*self._workers, *self._retries]:
            task.cancel()
        await asyncio.gather(*self._workers, *self._retries, return_exceptions=True)
        self._workers.clear()
        self._retries.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Sender:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- queueing -------------------------------------------------------------------
    def submit(self, target: Target, envelope: JSON) -> None:
        """Queue one event for one subscription (maybe twice, see duplicate_probability)."""
        if self._queue is None or self._idle is None:
            raise RuntimeError("Sender.start() has not been awaited")
        event_id = str(envelope["webhook_event_id"])
        key = (target.webhook_id, event_id)
        if key not in self.deliveries:
            event_type = str(envelope.get("payload", {}).get("webhook_event_type", ""))
            self.deliveries[key] = Delivery(
                target.webhook_id, event_id, event_type, target.receiver_url
            )
        body = json.dumps(envelope, separators=(",", ":")).encode()
        copies = 2 if self._rng.random() < self.duplicate_probability else 1
        for copy in range(copies):
            self._pending += 1
            self._idle.clear()
            self._queue.put_nowait(_Job(target, envelope, body, duplicate=copy > 0))
            self.counts["events_queued"] += 1

    @property
    def pending(self) -> int:
        return self._pending

    async def drain(self, seconds: float | None = None) -> bool:
        """Wait until every queued event is delivered or dropped; False on timeout."""
        if self._idle is None:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def delivered_event_ids(self, webhook_id: str | None = None) -> set[str]:
        return {
            d.event_id
            for d in self.deliveries.values()
            if d.outcome == "delivered" and (webhook_id is None or d.webhook_id == webhook_id)
        }

    def stats(self) -> JSON:
        outcomes = Counter(d.outcome for d in self.deliveries.values())
        return {
            "events": len(self.deliveries),
            "delivered": outcomes["delivered"],
            "dropped": outcomes["dropped"],
            "pending": self._pending,
            "attempts": self.counts["attempts"],
            "attempts_ok": self.counts["attempts_ok"],
            "attempts_failed": self.counts["attempts_failed"],
            "duplicates_sent": self.counts["duplicates_sent"],
        }

    # ---- delivery -------------------------------------------------------------------
    async def _dispatch(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if self.shuffle:
                self._rng.shuffle(batch)
            for job in batch:
                await self._try(job, 0)

    async def _try(self, job: _Job, number: int) -> None:
        attempt = await self.attempt(job.target, job.body, number=number + 1)
        attempt.duplicate = job.duplicate
        delivery = self.deliveries[(job.target.webhook_id, str(job.envelope["webhook_event_id"]))]
        delivery.attempts.append(attempt)
        self.counts["attempts"] += 1
        if job.duplicate:
            self.counts["duplicates_sent"] += 1
        if attempt.ok:
            self.counts["attempts_ok"] += 1
            delivery.outcome = "delivered"
            self._done()
            return
        self.counts["attempts_failed"] += 1
        if number + 1 >= len(self.schedule):
            if delivery.outcome == "pending":
                delivery.outcome = "dropped"
            self._done()
            return
        task = asyncio.create_task(self._retry_later(job, number + 1))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _retry_later(self, job: _Job, number: int) -> None:
        await asyncio.sleep(self.schedule[number] * self.time_factor)
        await self._try(job, number)

    def _done(self) -> None:
        self._pending -= 1
        if self._pending == 0 and self._idle is not None:
            self._idle.set()

    async def attempt(self, target: Target, body: bytes, *, number: int = 1) -> Attempt:
        """POST `body` once to the target; never raises for network trouble."""
        if self._client is None:
            raise RuntimeError("Sender.start() has not been awaited")
        headers = {"content-type": "application/json", "user-agent": "leap-sim"}
        headers.update(dict(target.headers))
        at = datetime.now(UTC)
        began = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            response = await self._client.post(target.receiver_url, content=body, headers=headers)
            status = response.status_code
        except httpx.TimeoutException:
            error = f"no response within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:
            # Leap counts any failure as a failed attempt. An exception escaping here would
            # end the retry task silently and leave the event pending forever.
            error = f"unexpected {type(exc).__name__}: {exc}"
        elapsed = int((time.perf_counter() - began) * 1000)
        return Attempt(number, at, False, status, error, elapsed)
