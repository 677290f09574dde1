"""A business number's rate shared through PostgreSQL, for workers without Redis.

One row per number (`channel_pacing`) holds GCRA's theoretical arrival time in microseconds of
the database server's clock, and the throttle penalty after Meta's 130429, as `RedisPacer` keeps
them in Redis (the same arithmetic as `pacing.py`, in SQL). Each worker reserves its slots in
blocks of `BLOCK_SECONDS` of the rate with one autocommitted UPDATE (at 1,000/s, twenty
statements a second per number, not a thousand) and hands them out locally; a slot that passes
unused is dropped, so a block can leave the rate under-used but never over it. The pair rate
(per recipient) is kept by each worker in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wagate.dispatch.pacing import (
    DEFAULT_PAIR_BURST,
    DEFAULT_PAIR_INTERVAL,
    MICROS,
    MemoryPacer,
    Pacer,
    Reserved,
    Sleep,
    Slot,
    ThrottlePolicy,
    check_rate,
    recovered_factor,
    throttled_rate,
)

BLOCK_SECONDS = 0.05
MAX_BLOCK = 100

_NOW = "(SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000) AS BIGINT) AS us)"
_FACTOR = (
    "CASE WHEN p.since_us IS NULL THEN 1.0"
    " ELSE LEAST(1.0, p.factor + :recovery * (now.us - p.since_us) / 1000000.0) END"
)
_ENSURE = text(
    "INSERT INTO channel_pacing (channel_id, tat_us) VALUES (:channel, 0)"
    " ON CONFLICT (channel_id) DO NOTHING"
)
# GCRA for `count` slots at once: they start at the later of the stored time and now, each
# 1/rate apart (rounded as send_interval_us does), at the throttled rate.
_RESERVE = text(
    f"WITH now AS {_NOW}, paced AS ("
    "  SELECT p.channel_id, now.us, CAST(FLOOR(1000000.0 / LEAST(CAST(:mps AS DOUBLE PRECISION),"
    f"    GREATEST(CAST(:min_rate AS DOUBLE PRECISION), :mps * {_FACTOR}))) AS BIGINT) + 1"
    "      AS interval_us"
    "  FROM channel_pacing p, now WHERE p.channel_id = :channel)"
    " UPDATE channel_pacing p"
    " SET tat_us = GREATEST(p.tat_us, paced.us) + :count * paced.interval_us"
    " FROM paced WHERE p.channel_id = paced.channel_id"
    " RETURNING p.tat_us, paced.us AS now_us, paced.interval_us"
)
_THROTTLE = text(
    f"WITH now AS {_NOW}"
    f" UPDATE channel_pacing p SET factor = ({_FACTOR}) * :cut, since_us = now.us FROM now"
    " WHERE p.channel_id = :channel"
    "   AND (p.since_us IS NULL OR now.us - p.since_us >= :hold_us)"
)
_PENALTY = text(
    f"WITH now AS {_NOW}"
    " SELECT p.factor, p.since_us, now.us AS now_us FROM channel_pacing p, now"
    " WHERE p.channel_id = :channel"
)


class DatabasePacer(Pacer):
    """See the module's docstring. `engine` must be PostgreSQL's. A slot's `starts_at` is on the
    database server's clock (seconds), as `RedisPacer`'s is on Redis's."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        pair_interval: float = DEFAULT_PAIR_INTERVAL,
        pair_burst: int = DEFAULT_PAIR_BURST,
        throttle: ThrottlePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(pair_interval=pair_interval, pair_burst=pair_burst, sleep=sleep)
        self.engine = engine
        self.throttle_policy = throttle or ThrottlePolicy()
        self._pairs = MemoryPacer(
            pair_interval=pair_interval, pair_burst=pair_burst, clock=clock, sleep=sleep
        )
        self._clock = clock
        # Reserved slots: (when on our clock, when on the database server's, in seconds).
        self._blocks: dict[str, Reserved] = {}
        self._known: set[str] = set()  # numbers whose row exists

    async def _autocommit(self) -> AsyncConnection:
        conn = await self.engine.connect()
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    async def _reserve(self, channel_id: str, mps: float, count: int) -> None:
        policy = self.throttle_policy
        conn = await self._autocommit()
        try:
            if channel_id not in self._known:
                await conn.execute(_ENSURE, {"channel": channel_id})
                self._known.add(channel_id)
            row = (
                await conn.execute(
                    _RESERVE,
                    {
                        "channel": channel_id,
                        "mps": mps,
                        "min_rate": policy.min_rate,
                        "recovery": policy.recovery_per_second,
                        "count": count,
                    },
                )
            ).one()
        finally:
            await conn.close()
        # Server time to ours, from when the answer came (a slot may start a little late for
        # the round trip, never early).
        answered = self._clock()
        self._blocks.setdefault(channel_id, Reserved()).add(
            answered=answered,
            now_us=row.now_us,
            first_us=row.tat_us - count * row.interval_us,
            interval_us=row.interval_us,
            count=count,
        )

    async def channel_slot(
        self, channel_id: str, mps: float, *, max_wait: float | None = None
    ) -> Slot:
        check_rate(mps)
        slots = self._blocks.setdefault(channel_id, Reserved())
        slots.drop_passed(self._clock())  # passed unused: lost to us, never given late
        if not slots:
            block = max(1, min(MAX_BLOCK, round(mps * BLOCK_SECONDS)))
            await self._reserve(channel_id, mps, block)
        return slots.take(self._clock(), max_wait)

    async def pair_slot(
        self, channel_id: str, phone: str, *, max_wait: float | None = None
    ) -> Slot:
        return await self._pairs.pair_slot(channel_id, phone, max_wait=max_wait)

    async def throttled(self, channel_id: str) -> None:
        policy = self.throttle_policy
        conn = await self._autocommit()
        try:
            await conn.execute(_ENSURE, {"channel": channel_id})
            await conn.execute(
                _THROTTLE,
                {
                    "channel": channel_id,
                    "recovery": policy.recovery_per_second,
                    "cut": policy.cut,
                    "hold_us": round(policy.hold * MICROS),
                },
            )
        finally:
            await conn.close()
        if channel_id in self._blocks:  # slots reserved at the old rate: not used
            self._blocks[channel_id].clear()

    async def effective_rate(self, channel_id: str, mps: float) -> float:
        check_rate(mps)
        conn = await self._autocommit()
        try:
            row = (await conn.execute(_PENALTY, {"channel": channel_id})).first()
        finally:
            await conn.close()
        penalty = None
        if row is not None and row.since_us is not None:
            penalty = (float(row.factor), int(row.since_us))
        now_us = row.now_us if row is not None else 0
        factor = recovered_factor(penalty, now_us, self.throttle_policy)
        return throttled_rate(mps, factor, self.throttle_policy)

    async def aclose(self) -> None:
        self._blocks.clear()
        await self._pairs.aclose()
