"""Each account's API request limit (`wagate accounts create --api-rate N`): N requests a
second with bursts to 2N, per API process; 0 means no limit."""

from __future__ import annotations

import time
from collections.abc import Callable


class AccountRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # account → (tokens, updated)

    def check(self, account_id: str, rate: int) -> float | None:
        """Take one request; None if allowed, else the seconds until one would be."""
        if rate <= 0:
            return None
        burst = 2.0 * rate
        now = self._clock()
        tokens, updated = self._buckets.get(account_id, (burst, now))
        tokens = min(burst, tokens + (now - updated) * rate)
        if tokens >= 1.0:
            self._buckets[account_id] = (tokens - 1.0, now)
            return None
        self._buckets[account_id] = (tokens, now)
        return (1.0 - tokens) / rate
