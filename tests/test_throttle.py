"""The limiter and the lock-out on their own: a clock passed in, no waiting."""

from __future__ import annotations

import pytest

from engagement.throttle import (
    MemoryFailureLock,
    MemoryRateLimiter,
    Rate,
    RateError,
    Refusal,
)

HOUR = Rate(3, 3600)


def test_rates_read_as_count_per_unit():
    assert Rate.parse("3/hour") == Rate(3, 3600)
    assert Rate.parse(" 60 / minutes ") == Rate(60, 60)
    assert Rate.parse("1/day") == Rate(1, 86_400)
    for bad in ("0/hour", "3 per hour", "3/week", "-1/second", ""):
        with pytest.raises(RateError):
            Rate.parse(bad)


async def test_a_burst_of_count_then_one_per_interval():
    limiter = MemoryRateLimiter()
    limits = [("number:+331", HOUR)]

    assert [await limiter.acquire(limits, 1000.0) for _ in range(3)] == [None, None, None]
    assert await limiter.acquire(limits, 1000.0) == Refusal("number:+331", 1200.0)
    assert await limiter.acquire(limits, 2199.0) == Refusal("number:+331", 1.0)
    assert await limiter.acquire(limits, 2200.0) is None  # one more after 3600 / 3 s
    assert await limiter.acquire(limits, 2200.0) == Refusal("number:+331", 1200.0)


async def test_a_refusal_counts_against_no_other_limit():
    limiter = MemoryRateLimiter()
    overall = ("overall:", Rate(2, 60))
    assert await limiter.acquire([("number:A", Rate(1, 3600)), overall], 0.0) is None

    refused = await limiter.acquire([("number:A", Rate(1, 3600)), overall], 0.0)

    assert refused == Refusal("number:A", 3600.0)
    assert await limiter.acquire([("number:B", Rate(1, 3600)), overall], 0.0) is None
    assert await limiter.acquire([("number:C", Rate(1, 3600)), overall], 0.0) == Refusal(
        "overall:", 30.0
    )


async def test_keys_are_bounded(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("engagement.throttle.MAX_KEYS", 100)
    limiter = MemoryRateLimiter()
    for i in range(1000):
        await limiter.acquire([(f"address:{i}", HOUR)], float(i))
    assert len(limiter) <= 100


async def test_failures_lock_out_longer_and_longer_up_to_the_cap():
    lock = MemoryFailureLock(free=2, base_s=1, max_s=8, forget_after_s=3600)

    earned = [await lock.failed("10.0.0.1", 100.0) for _ in range(7)]

    assert earned == [0, 0, 1, 2, 4, 8, 8]
    assert await lock.locked_for("10.0.0.1", 100.0) == 8
    assert await lock.locked_for("10.0.0.1", 105.0) == 3
    assert await lock.locked_for("10.0.0.2", 100.0) == 0


async def test_success_or_a_quiet_hour_starts_over():
    lock = MemoryFailureLock(free=1, base_s=10, max_s=60, forget_after_s=3600)
    assert [await lock.failed("a", 0.0) for _ in range(2)] == [0, 10]
    assert await lock.admit("a", 0.0) == 10  # a right key while locked out: refused
    assert await lock.admit("a", 10.0) == 0  # after the lock: admitted, failures forgotten
    assert await lock.locked_for("a", 10.0) == 0
    assert await lock.failed("a", 0.0) == 0

    assert await lock.failed("b", 0.0) == 0
    assert await lock.failed("b", 4000.0) == 0  # the first failure was forgotten
