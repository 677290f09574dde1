"""Pacing through Redis while it answers, and the workers' shares while it does not.

`FailoverPacer` wraps a `RedisPacer`. When a call to Redis fails it switches to a `SplitPacer`
(each worker paces each number at its rate divided by the live workers), says so in the log once,
checks every `PROBE_EVERY` seconds whether Redis is back, and then switches back, saying so too.
How the switches avoid a burst is in `pacing_share`'s docstring.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from wagate.dispatch.pacing import Pacer, Slot
from wagate.dispatch.pacing_redis import RedisPacer
from wagate.dispatch.pacing_share import MARGIN, PROBE_EVERY, RESERVE_AHEAD, SplitPacer

log = logging.getLogger("wagate.pacing")

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class FailoverPacer(Pacer):
    """`primary` (Redis) while it answers, `fallback` (the workers' shares) while it does not."""

    def __init__(
        self,
        primary: RedisPacer,
        fallback: SplitPacer,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(pair_interval=primary.pair_interval, pair_burst=primary.pair_burst,
                         sleep=primary._sleep)  # fmt: skip
        self.primary = primary
        self.fallback = fallback
        self._clock = clock
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._back_at = -1e9
        self._held: set[str] = set()  # channels held in Redis since it came back

    @property
    def redis_down(self) -> bool:
        return self._down_since is not None

    def _went_down(self, error: BaseException) -> None:
        if self._down_since is not None:
            return
        self._down_since = self._next_probe = self._clock()
        self._next_probe += PROBE_EVERY
        self.fallback.hold_all(RESERVE_AHEAD + MARGIN)  # until Redis's slots have all started
        log.warning(
            "Redis is unreachable (%s): each business number is paced at its rate divided by "
            "the %d live workers in this one until Redis is back",
            type(error).__name__,
            max(1, self.fallback.share()),
        )

    async def _redis_up(self) -> bool:
        if self._down_since is None:
            return True
        if self._clock() < self._next_probe:
            return False
        self._next_probe = self._clock() + PROBE_EVERY
        try:
            await self.primary.ping()
        except REDIS_DOWN:
            return False
        log.warning(
            "Redis is back after %.0f s: business numbers are paced through it again",
            self._clock() - self._down_since,
        )
        self._down_since = None
        self._back_at = self._clock()
        self._held.clear()
        return True

    async def channel_slot(
        self, channel_id: str, mps: float, *, max_wait: float | None = None
    ) -> Slot:
        if await self._redis_up():
            try:
                hold = self._back_at + PROBE_EVERY + RESERVE_AHEAD + MARGIN - self._clock()
                if hold > 0 and channel_id not in self._held:
                    # The others may still be sending their shares: after those.
                    await self.primary.hold(channel_id, hold)
                    self._held.add(channel_id)
                return await self.primary.channel_slot(channel_id, mps, max_wait=max_wait)
            except REDIS_DOWN as error:
                self._went_down(error)
        return await self.fallback.channel_slot(channel_id, mps, max_wait=max_wait)

    async def pair_slot(
        self, channel_id: str, phone: str, *, max_wait: float | None = None
    ) -> Slot:
        if await self._redis_up():
            try:
                return await self.primary.pair_slot(channel_id, phone, max_wait=max_wait)
            except REDIS_DOWN as error:
                self._went_down(error)
        return await self.fallback.pair_slot(channel_id, phone, max_wait=max_wait)

    async def throttled(self, channel_id: str) -> None:
        if await self._redis_up():
            try:
                await self.primary.throttled(channel_id)
                return
            except REDIS_DOWN as error:
                self._went_down(error)
        await self.fallback.throttled(channel_id)

    async def effective_rate(self, channel_id: str, mps: float) -> float:
        if await self._redis_up():
            try:
                return await self.primary.effective_rate(channel_id, mps)
            except REDIS_DOWN as error:
                self._went_down(error)
        return await self.fallback.effective_rate(channel_id, mps)

    async def aclose(self) -> None:
        await self.primary.aclose()
        await self.fallback.aclose()
