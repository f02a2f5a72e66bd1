"""A helpdesk account's API budget, shared by every process of the bridge (issue 17).

Zendesk and Freshdesk limit API requests per account per minute, and every request the
bridge makes spends the customer's budget, whichever process makes it (workers, beat's
polls, a `setup` command). One schedule in Redis spaces them out: each request reserves the
next free slot, `60 / limit` seconds after the one before (a generic cell rate algorithm;
a burst of up to `BURST` requests goes at once), and waits for it. Zendesk's answers
tighten it: a lower announced limit (Zendesk's `X-Rate-Limit`, Freshdesk's
`X-RateLimit-Total`) replaces the configured one, a nearly spent remainder
(`X-Rate-Limit-Remaining`, `ratelimit-remaining`, `X-RateLimit-Remaining`) and a 429's
`Retry-After` push every process's next slot past the moment the helpdesk names.

Redis keys (one per adapter, named by it beside its other keys):

    P:adapter:<helpdesk>:budget   hash   next: epoch seconds of the next free slot;
                                         hold: no request before this (a 429, a spent
                                         window); limit: requests per minute the helpdesk
                                         announced (when lower than the configured
                                         limit); expires when unused
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import redis

from bridge import http_client as http
from bridge.errors import TransientError
from bridge.http_client import parse_retry_after
from bridge.redis_client import Script

#: Requests that may go at once before the spacing applies: a poll round or a batch of
#: deliveries starts without waiting, and the average stays at the limit.
BURST = 5
#: Seconds a delivery's request waits for its turn before the delivery is put off instead
#: (it holds its conversation's lease meanwhile).
MAX_WAIT = 5.0
#: Seconds a poll round's reads keep waiting for their turn, 429s included.
PATIENCE = 180.0
#: Below this many requests left in Zendesk's window, the bridge waits for the window's
#: reset rather than spend the last ones (other integrations share the account).
KEEP_IN_HAND = 3

# Reserve the next slot if it comes within `max_wait`; returns the wait (0: go now), or,
# when it is too far, the wait without reserving (the caller gives the slot to no one).
# KEYS: budget hash; ARGV: now, spacing (s), burst, max wait (s), ttl (s)
_SPEND = """
local now, spacing = tonumber(ARGV[1]), tonumber(ARGV[2])
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit') or '0')
if limit > 0 then spacing = math.max(spacing, 60 / limit) end
local nxt = math.max(tonumber(redis.call('HGET', KEYS[1], 'next') or '0'), now)
local hold = tonumber(redis.call('HGET', KEYS[1], 'hold') or '0')
local wait = math.max(nxt - now - (tonumber(ARGV[3]) - 1) * spacing, hold - now, 0)
if wait > tonumber(ARGV[4]) then return tostring(wait) end
redis.call('HSET', KEYS[1], 'next', tostring(math.max(nxt, now + wait) + spacing))
redis.call('EXPIRE', KEYS[1], ARGV[5])
return tostring(wait)
"""

# Hold every request until `until` at least (never earlier); record a lower announced limit.
# KEYS: budget hash; ARGV: until (epoch s, 0: none), announced limit (0: none), ttl (s)
_TIGHTEN = """
if tonumber(ARGV[1]) > tonumber(redis.call('HGET', KEYS[1], 'hold') or '0') then
  redis.call('HSET', KEYS[1], 'hold', ARGV[1])
end
if tonumber(ARGV[2]) > 0 then redis.call('HSET', KEYS[1], 'limit', ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


_LIMIT = ("x-rate-limit", "ratelimit-limit", "x-ratelimit-total")
_REMAINING = ("x-rate-limit-remaining", "ratelimit-remaining", "x-ratelimit-remaining")


class Budget:
    """Requests per minute for one helpdesk account, across every process sharing `key`.

    `label` and `setting` name the account and the variable that sets `per_minute` in the
    error a delivery gets when its turn is too far away."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        label: str = "Zendesk",
        setting: str = "ZENDESK_RATE_LIMIT",
    ) -> None:
        self.key, self.label, self.setting = key, label, setting
        self.per_minute = per_minute
        self.clock, self.sleep = clock, sleep
        self._spend = Script(client, _SPEND)
        self._tighten = Script(client, _TIGHTEN)

    @property
    def spacing(self) -> float:
        return 60.0 / self.per_minute

    def spend(self, max_wait: float) -> float:
        """Wait for this process's turn to send one request; returns the seconds waited.

        Raises TransientError (with the wait as `retry_after`) instead of waiting longer
        than `max_wait`: a delivery then gives its conversation back and is retried later,
        rather than holding a worker for minutes.
        """
        ttl = int(max(120.0, BURST * self.spacing * 4))
        wait = float(
            self._spend(
                keys=[self.key],
                args=[repr(self.clock()), repr(self.spacing), BURST, repr(max_wait), ttl],
            )
        )
        if wait > max_wait:
            raise TransientError(
                f"{self.label} API budget: the next request slot is {wait:.0f}s away "
                f"({self.setting}={self.per_minute}/min, or less as {self.label} announced)",
                retry_after=wait,
            )
        if wait > 0:
            self.sleep(wait)
        return wait

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Tighten the schedule from an answer's rate-limit headers and a 429."""
        now = self.clock()
        until = 0.0
        announced = _number(_first(headers, _LIMIT))
        limit = int(announced) if announced and announced < self.per_minute else 0
        remaining = _number(_first(headers, _REMAINING))
        if remaining is not None and remaining <= KEEP_IN_HAND:
            # `ratelimit-reset` (list endpoints only) says when the window rolls over;
            # without it, slow down a few turns rather than stop for a whole minute: if
            # that is not enough, the 429 that follows names the exact wait.
            reset = _number(headers.get("ratelimit-reset"))
            turn = 60.0 / (announced or self.per_minute)
            until = now + (reset if reset is not None else (KEEP_IN_HAND + 1 - remaining) * turn)
        if status == 429:
            after = parse_retry_after(headers.get("retry-after"), now)
            until = max(until, now + (after if after is not None else 60.0))
        if until or limit:
            ttl = int(max(120.0, until - now + 60))
            self._tighten(keys=[self.key], args=[repr(until), limit, ttl])


def _first(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if value := headers.get(name):
            return value
    return None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None and value.strip() else None
    except ValueError:
        return None


def request(
    budget: Budget | None,
    client: http.Client,
    method: str,
    url: str,
    *,
    what: str,
    timeout: float,
    patient: bool = False,
    **kwargs: Any,
) -> http.Response:
    """`http_client.request` in its turn of `budget` (None: no budget), which learns from
    the answer. A delivery waits up to MAX_WAIT for its turn; a `patient` caller (a poll
    round's reads) waits for as long as it takes, through 429s too, until PATIENCE."""
    give_up = time.monotonic() + PATIENCE
    while True:
        if budget is not None:
            left = give_up - time.monotonic()
            budget.spend(max_wait=max(0.0, left) if patient else MAX_WAIT)
        try:
            resp = http.request(client, method, url, what=what, timeout=timeout, **kwargs)
        except TransientError as exc:
            if budget is not None and exc.status == 429:
                after = "" if exc.retry_after is None else repr(exc.retry_after)
                budget.observe(429, {"retry-after": after})
                if patient and time.monotonic() < give_up:
                    continue  # the round waits for the window and goes on
            raise
        if budget is not None:
            budget.observe(resp.status_code, resp.headers)
        return resp
