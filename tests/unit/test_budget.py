"""The API budget every process shares (bridge/helpdesks/budget.py): Zendesk, Freshdesk."""

from __future__ import annotations

import fakeredis
import pytest

from bridge.errors import TransientError
from bridge.helpdesks.budget import BURST, Budget

KEY = "t:adapter:zendesk:budget"


class Clock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


def budget(redis: fakeredis.FakeRedis, clock: Clock, per_minute: int = 120) -> Budget:
    return Budget(redis, KEY, per_minute, clock=clock.time, sleep=clock.sleep)


def test_a_burst_goes_at_once_then_requests_are_spaced_at_the_limit(
    redis: fakeredis.FakeRedis,
) -> None:
    clock = Clock()
    b = budget(redis, clock)  # 120/min: one every 0.5 s
    waits = [b.spend(max_wait=60) for _ in range(BURST + 3)]
    assert waits[:BURST] == [0.0] * BURST
    assert waits[BURST:] == [0.5, 0.5, 0.5]
    # Over any stretch, no faster than the limit: 8 requests took 1.5 s (5 free, 3 spaced).
    assert clock.now - 1_000_000.0 == pytest.approx(1.5)


def test_every_process_spends_from_the_same_schedule(redis: fakeredis.FakeRedis) -> None:
    clock = Clock()
    a, b = budget(redis, clock), budget(redis, clock)
    for _ in range(BURST):
        a.spend(max_wait=60)
    assert b.spend(max_wait=60) == 0.5  # the other process finds the burst spent
    assert a.spend(max_wait=60) == 0.5


def test_an_idle_minute_gives_the_burst_back(redis: fakeredis.FakeRedis) -> None:
    clock = Clock()
    b = budget(redis, clock)
    for _ in range(BURST + 2):
        b.spend(max_wait=60)
    clock.now += 60
    assert [b.spend(max_wait=60) for _ in range(BURST)] == [0.0] * BURST


def test_a_turn_too_far_away_is_refused_and_not_reserved(redis: fakeredis.FakeRedis) -> None:
    clock = Clock()
    b = budget(redis, clock, per_minute=6)  # one every 10 s
    for _ in range(BURST):
        b.spend(max_wait=60)
    with pytest.raises(TransientError) as info:
        b.spend(max_wait=5)
    assert info.value.retry_after == pytest.approx(10) and "ZENDESK_RATE_LIMIT" in info.value.reason
    assert clock.slept == []
    assert b.spend(max_wait=60) == pytest.approx(10)  # the refused one took no slot


def test_a_429_holds_every_process_until_its_retry_after(redis: fakeredis.FakeRedis) -> None:
    clock = Clock()
    a, b = budget(redis, clock), budget(redis, clock)
    a.observe(429, {"retry-after": "30"})
    assert b.spend(max_wait=60) == pytest.approx(30)  # no burst before the hold ends
    assert a.spend(max_wait=60) == 0.0
    # Without Retry-After, a minute: Zendesk's window.
    a.observe(429, {})
    assert b.spend(max_wait=120) == pytest.approx(60)


def test_a_nearly_spent_window_waits_for_its_reset(redis: fakeredis.FakeRedis) -> None:
    clock = Clock()
    b = budget(redis, clock)
    b.observe(200, {"x-rate-limit-remaining": "10", "ratelimit-reset": "12"})
    assert b.spend(max_wait=60) == 0.0  # plenty left: nothing held
    b.observe(200, {"ratelimit-remaining": "2", "ratelimit-reset": "12"})
    assert b.spend(max_wait=60) == pytest.approx(12)
    # Without the reset (Zendesk sends it on list endpoints only): a few turns, not a minute.
    b.observe(200, {"x-rate-limit-remaining": "0"})
    assert b.spend(max_wait=60) == pytest.approx(4 * 0.5)


def test_a_lower_announced_limit_wins_a_higher_one_is_ignored(
    redis: fakeredis.FakeRedis,
) -> None:
    clock = Clock()
    b = budget(redis, clock, per_minute=120)
    b.observe(200, {"x-rate-limit": "700"})  # the plan allows more: ZENDESK_RATE_LIMIT holds
    for _ in range(BURST):
        b.spend(max_wait=60)
    assert b.spend(max_wait=60) == 0.5
    b.observe(200, {"x-rate-limit": "60"})  # the account allows less: one a second
    waits = [b.spend(max_wait=60) for _ in range(BURST + 2)]
    assert waits[-2:] == [pytest.approx(1.0), pytest.approx(1.0)]


def test_freshdesks_headers_and_a_dated_retry_after_tighten_it_too(
    redis: fakeredis.FakeRedis,
) -> None:
    import email.utils

    clock = Clock()
    b = Budget(
        redis,
        KEY,
        120,
        clock=clock.time,
        sleep=clock.sleep,
        label="Freshdesk",
        setting="FRESHDESK_RATE_LIMIT",
    )
    b.observe(200, {"x-ratelimit-total": "60", "x-ratelimit-remaining": "40"})
    waits = [b.spend(max_wait=60) for _ in range(BURST + 1)]
    assert waits[-1] == pytest.approx(1.0)  # Freshdesk's plan allows 60/min: one a second
    b.observe(200, {"x-ratelimit-total": "60", "x-ratelimit-remaining": "1"})
    assert b.spend(max_wait=60) == pytest.approx(3.0)  # (3 + 1 - 1) turns of 1 s
    # Retry-After may be an HTTP date: 45 s from the clock's now.
    b.observe(429, {"retry-after": email.utils.formatdate(clock.now + 45, usegmt=True)})
    with pytest.raises(TransientError) as info:
        b.spend(max_wait=5)
    assert info.value.retry_after == pytest.approx(45, abs=1)
    assert "FRESHDESK_RATE_LIMIT" in info.value.reason and "Freshdesk" in info.value.reason
