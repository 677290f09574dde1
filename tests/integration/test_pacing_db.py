"""A number's rate shared through PostgreSQL (no Redis): two pacers, as two workers would have,
each with its own connections, share one schedule. Assertions are on the slots the pacers hand
out (their start times on the database server's clock), not on how long anything took."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from tests.support.databases import fresh_database
from wagate.dispatch.pacing_db import DatabasePacer
from wagate.store.db import make_async_engine, migrate

pytestmark = pytest.mark.postgres


def most_in_one_second(starts: list[float]) -> int:
    starts = sorted(starts)
    most = first = 0
    for last, start in enumerate(starts):
        while start - starts[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


async def test_two_workers_share_one_numbers_rate_through_the_database(tmp_path: Path) -> None:
    with fresh_database("postgresql", tmp_path) as url:
        migrate(url)
        engines = [make_async_engine(url) for _ in range(2)]
        pacers = [DatabasePacer(engine) for engine in engines]
        try:

            async def take(pacer: DatabasePacer, count: int) -> list[float]:
                starts = []
                for _ in range(count):
                    slot = await pacer.channel_slot("ch_1", 100)
                    assert slot.granted
                    starts.append(slot.starts_at)
                return starts

            first, second = await asyncio.gather(take(pacers[0], 150), take(pacers[1], 150))
            both = sorted(first + second)
            # 300 slots at 100/s, one after the other: three seconds of them, never more than
            # 100 in one second.
            assert most_in_one_second(both) <= 100
            assert min(b - a for a, b in itertools.pairwise(both)) >= 1 / 100
            assert len(first) == len(second) == 150

            # Meta's 130429 to one worker slows the number for the other one too.
            await pacers[0].throttled("ch_1")
            assert await pacers[1].effective_rate("ch_1", 100) == pytest.approx(50, rel=0.01)
            assert await pacers[1].effective_rate("ch_2", 100) == 100
            # A block's slots that pass unused are dropped, never handed out late.
            early = await pacers[1].channel_slot("ch_3", 1000)  # a block of 50 ms of slots
            await asyncio.sleep(0.1)
            late = await pacers[1].channel_slot("ch_3", 1000)
            assert late.granted and late.starts_at - early.starts_at >= 0.1
        finally:
            for pacer in pacers:
                await pacer.aclose()
            for engine in engines:
                await engine.dispose()
