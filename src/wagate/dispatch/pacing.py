"""Token buckets: a business number's messages per second, in this process."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`. `acquire` waits for a token."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self._tokens = self.burst
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._refill(now)
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


class ChannelPacer:
    """One bucket per channel, created on first use at the channel's configured rate."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    async def acquire(self, channel_id: str, mps: int) -> None:
        bucket = self._buckets.get(channel_id)
        if bucket is None or bucket.rate != mps:
            # A burst of one second's worth would let a fresh bucket exceed the rate within a
            # one-second window at start; a tenth of a second keeps every window under it.
            bucket = TokenBucket(mps, burst=max(1.0, mps / 10))
            self._buckets[channel_id] = bucket
        await bucket.acquire()
