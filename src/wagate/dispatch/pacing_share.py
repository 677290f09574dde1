"""Pacing when nothing shared is at hand: each worker sends its share of a number's rate.

`SplitPacer` keeps the limits in memory like `MemoryPacer`, but paces each business number at its
rate divided by the number of dispatchers alive (their heartbeats, store/workers.py): N workers
on one SQLite file, or N workers whose Redis is gone (`pacing_failover`), send N shares of the
rate, not N rates.

Changing hands without a burst. The dispatcher reserves a slot at most `RESERVE_AHEAD` seconds
before it is due, so:
- when Redis goes away, every slot Redis gave out starts within that much: the shares start
  after it;
- when Redis comes back, the other workers go on with their shares until they notice, at most
  `PROBE_EVERY` seconds later, and hold slots up to `RESERVE_AHEAD` beyond: a number's first
  Redis slot comes after both;
- a worker that joins others already sharing a rate waits until they have seen its heartbeat
  and taken their smaller shares (`JOIN_HOLD`).
A worker that dies leaves the others on their smaller shares until its heartbeat is stale: slower
for a few seconds, never faster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from wagate.dispatch.pacing import (
    DEFAULT_PAIR_BURST,
    DEFAULT_PAIR_INTERVAL,
    MemoryPacer,
    Pacer,
    Sleep,
    Slot,
    ThrottlePolicy,
    check_rate,
)
from wagate.store.workers import HEARTBEAT_SECONDS

RESERVE_AHEAD = 0.25
"""Seconds before its start that a send slot may be reserved, at most (the dispatcher's
`max_wait`)."""
PROBE_EVERY = 1.0
"""Seconds between two checks whether Redis is back."""
MARGIN = 0.05
JOIN_HOLD = HEARTBEAT_SECONDS + RESERVE_AHEAD + MARGIN


class SplitPacer(Pacer):
    """A number's rate divided among the `share()` live dispatchers, in this process's memory.
    Pair limits are this worker's own."""

    def __init__(
        self,
        *,
        share: Callable[[], int],
        pair_interval: float = DEFAULT_PAIR_INTERVAL,
        pair_burst: int = DEFAULT_PAIR_BURST,
        throttle: ThrottlePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(pair_interval=pair_interval, pair_burst=pair_burst, sleep=sleep)
        self.share = share
        self.memory = MemoryPacer(
            pair_interval=pair_interval,
            pair_burst=pair_burst,
            throttle=throttle,
            clock=clock,
            sleep=sleep,
        )
        self._clock = clock
        self._started = clock()
        self._hold_until = 0.0
        self._held: set[str] = set()  # channels the current hold was applied to

    def hold_all(self, seconds: float) -> None:
        """Start no send on any number in the next `seconds`."""
        self._hold_until = max(self._hold_until, self._clock() + seconds)
        self._held.clear()

    def _hold(self, channel_id: str) -> None:
        now = self._clock()
        until = self._hold_until
        if self.share() > 1:  # others share the rates: wait until they know of us
            until = max(until, self._started + JOIN_HOLD)
        if now < until and channel_id not in self._held:
            self.memory.hold(channel_id, until - now)
            self._held.add(channel_id)

    async def channel_slot(
        self, channel_id: str, mps: float, *, max_wait: float | None = None
    ) -> Slot:
        check_rate(mps)
        self._hold(channel_id)
        return await self.memory.channel_slot(
            channel_id, mps / max(1, self.share()), max_wait=max_wait
        )

    async def pair_slot(
        self, channel_id: str, phone: str, *, max_wait: float | None = None
    ) -> Slot:
        return await self.memory.pair_slot(channel_id, phone, max_wait=max_wait)

    async def throttled(self, channel_id: str) -> None:
        await self.memory.throttled(channel_id)

    async def effective_rate(self, channel_id: str, mps: float) -> float:
        return await self.memory.effective_rate(channel_id, mps) / max(1, self.share())

    async def aclose(self) -> None:
        await self.memory.aclose()
