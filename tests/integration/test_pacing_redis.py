"""The Redis pacer against a real Redis: limits shared by workers, in one process or several.

Assertions are on the schedule the pacer computes (slot start times in Redis server time), not on
how long anything took, so they hold on a slow machine too.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from redis.asyncio import Redis

from wagate.dispatch.pacing import MICROS, ThrottlePolicy, send_interval_us
from wagate.dispatch.pacing_redis import RedisPacer

REDIS_ENV = "WAGATE_TEST_REDIS_URL"


def redis_url_or_skip() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{REDIS_ENV} must be set in CI; Redis tests may not skip")
        pytest.skip(f"Redis pacing tests need {REDIS_ENV} (e.g. redis://127.0.0.1:6379/15)")
    return url


@pytest.fixture
def redis_url() -> str:
    return redis_url_or_skip()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own, removed afterwards."""
    prefix = f"wagate:test:{secrets.token_hex(4)}"
    yield prefix
    async for key in redis.scan_iter(match=f"{prefix}:*"):
        await redis.delete(key)


@pytest.fixture
async def pacer(redis_url: str, prefix: str) -> AsyncIterator[RedisPacer]:
    pacer = RedisPacer(redis_url, key_prefix=prefix)
    yield pacer
    await pacer.aclose()


def most_in_one_second(starts_us: list[int]) -> int:
    """The most starts in any closed one-second window [t, t + 1 s]."""
    starts = sorted(starts_us)
    most, first = 0, 0
    for last, start in enumerate(starts):
        while start - starts[first] > MICROS:
            first += 1
        most = max(most, last - first + 1)
    return most


def gaps(starts_us: list[int]) -> list[int]:
    starts = sorted(starts_us)
    return [b - a for a, b in itertools.pairwise(starts)]


async def starts_of(pacer: RedisPacer, channel_id: str, mps: float, count: int) -> list[int]:
    starts = []
    for _ in range(count):
        slot = await pacer.channel_slot(channel_id, mps)
        assert slot.granted
        starts.append(round(slot.starts_at * MICROS))
    return starts


# --- per channel ---


@pytest.mark.parametrize(("mps", "count"), [(80, 200), (500, 1200), (1000, 1500)])
async def test_no_one_second_window_holds_more_than_mps(
    pacer: RedisPacer, mps: int, count: int
) -> None:
    first = await pacer.reserve_channel("ch_1", mps)
    assert first == 0.0
    starts = await starts_of(pacer, "ch_1", mps, count - 1)
    assert most_in_one_second(starts) <= mps
    assert min(gaps(starts)) >= send_interval_us(mps)


async def test_two_clients_sharing_a_channel_keep_to_its_rate(redis_url: str, prefix: str) -> None:
    workers = [RedisPacer(redis_url, key_prefix=prefix) for _ in range(2)]
    try:
        both = await asyncio.gather(*(starts_of(w, "ch_1", 500, 300) for w in workers))
    finally:
        for worker in workers:
            await worker.aclose()
    starts = both[0] + both[1]
    assert len(set(starts)) == 600
    assert most_in_one_second(starts) <= 500
    assert min(gaps(starts)) >= send_interval_us(500)


def reserve_in_another_process(
    redis_url: str, prefix: str, barrier: Any, mps: float, count: int
) -> list[int]:
    async def run() -> list[int]:
        pacer = RedisPacer(redis_url, key_prefix=prefix)
        try:
            # Connect and load the script first, so both processes start reserving together.
            await pacer.effective_rate("ch_1", mps)
            await asyncio.to_thread(barrier.wait)
            # As a worker does: each slot is waited for, so both are reserving for a while.
            starts = []
            for _ in range(count):
                slot = await pacer.channel_slot("ch_1", mps)
                assert slot.granted
                starts.append(round(slot.starts_at * MICROS))
                await asyncio.sleep(slot.wait)
            return starts
        finally:
            await pacer.aclose()

    return asyncio.run(run())


def test_two_worker_processes_sharing_a_channel_keep_to_its_rate() -> None:
    redis_url = redis_url_or_skip()
    prefix = f"wagate:test:{secrets.token_hex(4)}"
    context = multiprocessing.get_context("spawn")
    mps, count = 1000, 400
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        barrier = manager.Barrier(2)
        futures = [
            pool.submit(reserve_in_another_process, redis_url, prefix, barrier, mps, count)
            for _ in range(2)
        ]
        first, second = (future.result(timeout=60) for future in futures)
    starts = first + second
    assert len(set(starts)) == 2 * count
    # Both reserved at the same time: their slots interleave, yet none comes too soon.
    assert min(second) < max(first) and min(first) < max(second)
    assert most_in_one_second(starts) <= mps
    assert min(gaps(starts)) >= send_interval_us(mps)


async def test_a_worker_reserves_a_block_of_slots_with_one_call(
    pacer: RedisPacer, redis: Redis
) -> None:
    """At 1,000/s a worker asks Redis for 20 ms of slots at a time and hands them out itself:
    one round trip per send held a worker to about half of a 1,000/s number."""
    first = await pacer.channel_slot("ch_1", 1000)
    reserved = int(await redis.get(pacer.send_key("ch_1")))
    # Redis holds the time after the block: 20 slots past the first one's start. (The other
    # 19 are this worker's to hand out; one that passes unused is dropped, never sent late.)
    ahead = reserved - round(first.starts_at * MICROS)
    assert abs(ahead - 20 * send_interval_us(1000)) <= 2


async def test_hundreds_of_sends_asking_at_once_all_get_answers(pacer: RedisPacer) -> None:
    """A worker's sends (256 by default) ask at the same moment: each is answered. (redis-py's
    pool refused past 100 connections, which the failover took for Redis being down.)"""
    phones = [f"+1555{n:07d}" for n in range(300)]
    slots = await asyncio.gather(*(pacer.pair_slot("ch_1", phone) for phone in phones))
    assert all(slot.granted and slot.wait == 0.0 for slot in slots)
    sends = await asyncio.gather(*(pacer.channel_slot("ch_1", 1000) for _ in range(300)))
    starts = [round(slot.starts_at * MICROS) for slot in sends]
    assert len(set(starts)) == 300
    assert min(gaps(starts)) >= send_interval_us(1000)


async def test_max_wait_refuses_without_consuming(pacer: RedisPacer, redis: Redis) -> None:
    await pacer.reserve_channel("ch_1", 2)
    before = await redis.get(pacer.send_key("ch_1"))
    refused = await pacer.channel_slot("ch_1", 2, max_wait=0.1)
    assert not refused.granted
    assert 0.45 < refused.wait <= 0.500001
    assert await redis.get(pacer.send_key("ch_1")) == before


# --- per recipient ---


async def test_pair_burst_of_three_goes_at_once_and_the_fourth_waits(pacer: RedisPacer) -> None:
    waits = [await pacer.reserve_pair("ch_1", "+15550001") for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    # Server time moves on by the length of a round trip between calls, hence the ranges.
    assert 5.9 < waits[3] <= 6.0
    assert 11.9 < waits[4] <= 12.0


async def test_try_pair_consumes_only_when_it_grants(pacer: RedisPacer, redis: Redis) -> None:
    assert [await pacer.try_pair("ch_1", "+15550001") for _ in range(3)] == [0.0] * 3
    before = await redis.get(pacer.pair_key("ch_1", "+15550001"))
    refusals = [await pacer.try_pair("ch_1", "+15550001") for _ in range(5)]
    assert all(5.9 < wait <= 6.0 for wait in refusals)
    assert await redis.get(pacer.pair_key("ch_1", "+15550001")) == before
    assert 5.9 < await pacer.reserve_pair("ch_1", "+15550001") <= 6.0


# --- throttling ---


async def test_throttling_is_shared_and_cuts_the_rate(redis_url: str, prefix: str) -> None:
    one, other = (RedisPacer(redis_url, key_prefix=prefix) for _ in range(2))
    try:
        assert await other.effective_rate("ch_1", 1000) == 1000
        await one.throttled("ch_1")
        await one.throttled("ch_1")  # the same episode: cut once
        # Recovery is 10% of the rate per second, so a few ms later it is still about half.
        assert 500 <= await other.effective_rate("ch_1", 1000) < 510
        starts = await starts_of(other, "ch_1", 1000, 50)
        assert min(gaps(starts)) >= send_interval_us(510)
        assert await other.effective_rate("ch_2", 1000) == 1000
    finally:
        await one.aclose()
        await other.aclose()


async def test_a_throttled_rate_recovers(redis_url: str, prefix: str, redis: Redis) -> None:
    # Full recovery from a halving in 0.1 s, so the test need not wait long.
    policy = ThrottlePolicy(recovery_per_second=5.0, hold=0.01)
    pacer = RedisPacer(redis_url, key_prefix=prefix, throttle=policy)
    try:
        await pacer.throttled("ch_1")
        assert await pacer.effective_rate("ch_1", 1000) < 800
        ttl = await redis.pttl(pacer.throttle_key("ch_1"))
        assert 0 < ttl <= 101
        await asyncio.sleep(0.15)
        assert await pacer.effective_rate("ch_1", 1000) == 1000
        assert not await redis.exists(pacer.throttle_key("ch_1"))
    finally:
        await pacer.aclose()


# --- independence and housekeeping ---


async def test_channels_and_recipients_are_independent(pacer: RedisPacer) -> None:
    for _ in range(10):
        await pacer.reserve_channel("ch_1", 10)
        await pacer.reserve_pair("ch_1", "+15550001")
    await pacer.throttled("ch_1")

    assert await pacer.reserve_channel("ch_2", 10) == 0.0
    assert await pacer.effective_rate("ch_2", 10) == 10
    assert await pacer.try_pair("ch_1", "+15550002") == 0.0
    assert await pacer.try_pair("ch_2", "+15550001") == 0.0


async def test_keys_expire_when_they_stop_mattering(pacer: RedisPacer, redis: Redis) -> None:
    await pacer.reserve_channel("ch_1", 1)
    await pacer.reserve_pair("ch_1", "+15550001")
    await pacer.throttled("ch_2")
    await pacer.reserve_channel("ch_3", 1000)

    # Each key lives exactly as long as it still holds anyone back.
    assert 900 < await redis.pttl(pacer.send_key("ch_1")) <= 1_001
    assert 5_900 < await redis.pttl(pacer.pair_key("ch_1", "+15550001")) <= 6_000
    # Halved, recovering 10% a second: back to full in 5 s.
    assert 4_900 < await redis.pttl(pacer.throttle_key("ch_2")) <= 5_001
    await asyncio.sleep(0.05)
    assert not await redis.exists(pacer.send_key("ch_3"))


async def test_the_script_is_loaded_again_after_a_flush(pacer: RedisPacer, redis: Redis) -> None:
    assert await pacer.reserve_channel("ch_1", 10) == 0.0
    await redis.script_flush()
    assert 0.09 < await pacer.reserve_channel("ch_1", 10) <= 0.100001
