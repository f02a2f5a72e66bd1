"""When to try a failed delivery again, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass

_RNG = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, within a window from the first failure."""

    base: float = 1.0
    cap: float = 1800.0
    window: float = 48 * 3600

    def delay(
        self,
        attempts: int,
        *,
        first_failed: float,
        now: float,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before attempt `attempts + 1`, or None when the window is spent.

        The wait is drawn from [d/2, d] where d = base * 2**(attempts-1), capped ("equal
        jitter": never immediate, yet spread so retries from many conversations do not
        arrive together). A server's Retry-After is a floor, never shortened.
        """
        started = first_failed or now
        if now - started >= self.window:
            return None
        exp = min(self.cap, self.base * 2.0 ** max(0, min(attempts - 1, 60)))
        wait = exp / 2 + (rng or _RNG).uniform(0, exp / 2)
        if retry_after is not None:
            wait = max(wait, retry_after)
        if now + wait - started > self.window:
            # The last try lands at the window's end rather than never.
            wait = max(0.0, started + self.window - now)
        return wait
