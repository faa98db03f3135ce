"""The event sender: Leap's retry schedule (time-scaled), headers, duplicates, shuffling."""

from __future__ import annotations

import uuid

import pytest

from app.leap_sim.sender import LEAP_RETRY_SCHEDULE, Sender, Target
from tests.support.sim import Receiver


def envelope(n: int = 0) -> dict[str, object]:
    return {
        "webhook_event_id": str(uuid.uuid4()),
        "payload": {
            "webhook_event_type": "connect_session.updated",
            "partner_reference": f"ref-{n:03d}",
            "status": "CREATED",
        },
    }


def test_schedule_is_leaps() -> None:
    minutes = [s / 60 for s in LEAP_RETRY_SCHEDULE]
    assert minutes == [0, 1, 2, 4, 8, 16, 29, 60, 120, 240]


async def test_retries_until_the_receiver_accepts(receiver: Receiver) -> None:
    receiver.reset(fail_times=2)
    target = Target("hook-1", receiver.url, (("x-api-key", "abc"), ("x-other", "2")))
    event = envelope()
    async with Sender(time_factor=0.001) as sender:
        sender.submit(target, event)
        assert await sender.drain(5)
        delivery = sender.deliveries[("hook-1", str(event["webhook_event_id"]))]
        assert sender.delivered_event_ids() == {event["webhook_event_id"]}
    assert delivery.outcome == "delivered"
    assert [a.status_code for a in delivery.attempts] == [500, 500, 202]
    times = [r.at for r in receiver.received]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.06 * 0.9  # 1 minute scaled by 0.001
    assert times[2] - times[1] >= 0.12 * 0.9  # then 2 minutes
    assert all(
        r.headers["x-api-key"] == "abc" and r.headers["x-other"] == "2" for r in receiver.received
    )
    assert all(r.headers["content-type"] == "application/json" for r in receiver.received)
    assert receiver.received[0].body == event


async def test_gives_up_after_ten_tries(receiver: Receiver) -> None:
    receiver.reset(fail_times=100)
    async with Sender(time_factor=0.00001) as sender:
        event = envelope()
        sender.submit(Target("hook-1", receiver.url), event)
        assert await sender.drain(5)
        [delivery] = sender.deliveries.values()
        assert sender.delivered_event_ids() == set()
        assert sender.stats()["dropped"] == 1
    assert delivery.outcome == "dropped"
    assert len(delivery.attempts) == 10 == len(receiver.received)


async def test_unreachable_and_slow_receivers_count_as_failures(receiver: Receiver) -> None:
    receiver.reset(delay=0.5)
    async with Sender(time_factor=0.00001, timeout=0.1, schedule=(0, 1)) as sender:
        slow = envelope()
        sender.submit(Target("slow", receiver.url), slow)
        sender.submit(Target("nowhere", "http://127.0.0.1:9/hook"), envelope())
        assert await sender.drain(5)
    outcomes = {d.webhook_id: d for d in sender.deliveries.values()}
    assert outcomes["slow"].outcome == outcomes["nowhere"].outcome == "dropped"
    assert all(a.error and a.status_code is None for d in outcomes.values() for a in d.attempts)


async def test_duplicates_share_the_event_id(receiver: Receiver) -> None:
    receiver.reset()
    async with Sender(duplicate_probability=1.0, seed=3) as sender:
        events = [envelope(n) for n in range(5)]
        for e in events:
            sender.submit(Target("hook-1", receiver.url), e)
        assert await sender.drain(5)
        assert sender.stats()["duplicates_sent"] == 5
    received = [r.body["webhook_event_id"] for r in receiver.received]
    assert sorted(received) == sorted([str(e["webhook_event_id"]) for e in events] * 2)


async def _order(receiver: Receiver, seed: int) -> list[str]:
    receiver.reset()
    async with Sender(shuffle=True, seed=seed) as sender:
        for n in range(30):
            sender.submit(Target("hook-1", receiver.url), envelope(n))
        assert await sender.drain(5)
    return [r.body["payload"]["partner_reference"] for r in receiver.received]


@pytest.mark.parametrize("seed", [1, 2])
async def test_shuffle_is_seeded(receiver: Receiver, seed: int) -> None:
    first = await _order(receiver, seed)
    again = await _order(receiver, seed)
    in_order = [f"ref-{n:03d}" for n in range(30)]
    assert first == again
    assert first != in_order
    assert sorted(first) == in_order


async def test_in_order_without_shuffle(receiver: Receiver) -> None:
    receiver.reset()
    async with Sender() as sender:
        for n in range(20):
            sender.submit(Target("hook-1", receiver.url), envelope(n))
        assert await sender.drain(5)
    assert [r.body["payload"]["partner_reference"] for r in receiver.received] == [
        f"ref-{n:03d}" for n in range(20)
    ]


async def test_an_unexpected_error_is_a_failed_attempt_not_a_lost_retry(
    receiver: Receiver,
) -> None:
    # httpx.InvalidURL is not an httpx.HTTPError: it used to end the delivery task, which
    # left the event pending for ever and the sender never drained.
    receiver.reset()
    async with Sender(time_factor=0.00001, schedule=(0, 1)) as sender:
        sender.submit(Target("broken", "http://127.0.0.1:99999/hook"), envelope())
        sender.submit(Target("fine", receiver.url), envelope())
        assert await sender.drain(5)
    outcomes = {d.webhook_id: d for d in sender.deliveries.values()}
    assert outcomes["broken"].outcome == "dropped"
    assert len(outcomes["broken"].attempts) == 2
    assert all((a.error or "").startswith("unexpected") for a in outcomes["broken"].attempts)
    assert outcomes["fine"].outcome == "delivered"
