"""The in-process pacer and the GCRA arithmetic it shares with Redis, on a fake clock."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from wagate.dispatch.pacing import (
    MICROS,
    MemoryPacer,
    Pacer,
    ThrottlePolicy,
    gcra,
    send_interval_us,
)


class FakeClock:
    """Monotonic seconds that move only when told; `sleep` moves them too."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pacer_on(clock: FakeClock, **options: object) -> MemoryPacer:
    return MemoryPacer(clock=clock, sleep=clock.sleep, **options)  # type: ignore[arg-type]


def most_in_one_second(starts_us: list[int]) -> int:
    """The most starts in any closed one-second window [t, t + 1 s]."""
    starts = sorted(starts_us)
    most, first = 0, 0
    for last, start in enumerate(starts):
        while start - starts[first] > MICROS:
            first += 1
        most = max(most, last - first + 1)
    return most


def micros(seconds: float) -> int:
    return round(seconds * MICROS)


# --- the arithmetic ---


@pytest.mark.parametrize(
    ("rate", "interval_us"),
    [(80, 12_501), (1000, 1_001), (3, 333_334), (1, 1_000_001), (0.5, 2_000_001), (40.0, 25_001)],
)
def test_send_interval_is_just_over_one_over_rate(rate: float, interval_us: int) -> None:
    assert send_interval_us(rate) == interval_us
    # rate + 1 sends take more than a second, so no one-second window holds rate + 1.
    assert math.ceil(rate) * interval_us > MICROS


@pytest.mark.parametrize(
    ("tat", "now", "interval", "tolerance", "max_wait", "expected"),
    [
        (None, 100, 10, 0, None, (0, 110)),  # fresh key: at once
        (50, 100, 10, 0, None, (0, 110)),  # a TAT in the past is as good as none
        (130, 100, 10, 0, None, (30, 140)),  # queued behind earlier reservations
        (130, 100, 10, 20, None, (10, 140)),  # tolerance lets it go 20 µs early
        (130, 100, 10, 30, None, (0, 140)),
        (130, 100, 10, 0, 29, (30, None)),  # too far off for the caller: refused
        (130, 100, 10, 0, 30, (30, 140)),
        (130, 100, 10, 30, 0, (0, 140)),
    ],
)
def test_gcra(
    tat: int | None,
    now: int,
    interval: int,
    tolerance: int,
    max_wait: int | None,
    expected: tuple[int, int | None],
) -> None:
    result = gcra(
        tat_us=tat, now_us=now, interval_us=interval, tolerance_us=tolerance, max_wait_us=max_wait
    )
    assert result == expected


# --- per channel ---


def all_at_once(n: int, rng: random.Random) -> list[float]:
    return [0.0] * n


def every(gap: float) -> Callable[[int, random.Random], list[float]]:
    return lambda n, rng: [gap] * n


def random_gaps(n: int, rng: random.Random) -> list[float]:
    return [rng.expovariate(100.0) for _ in range(n)]


def bursts_with_idle_spells(n: int, rng: random.Random) -> list[float]:
    # 50 at once, then 2 s of nothing, and again: idle spells must not bank up a burst.
    return [2.0 if i % 50 == 0 else 0.0 for i in range(n)]


@pytest.mark.parametrize(
    ("mps", "count", "arrivals"),
    [
        (80, 200, all_at_once),
        (80, 200, every(0.005)),
        (80, 200, every(0.0125)),
        (80, 200, random_gaps),
        (80, 200, bursts_with_idle_spells),
        (1000, 3000, all_at_once),
        (1000, 3000, random_gaps),
        (7, 50, random_gaps),
        (1, 10, all_at_once),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
async def test_no_one_second_window_holds_more_than_mps(
    mps: int, count: int, arrivals: Callable[[int, random.Random], list[float]]
) -> None:
    clock = FakeClock()
    pacer = pacer_on(clock)
    starts: list[int] = []
    for gap in arrivals(count, random.Random(7)):
        clock.advance(gap)
        slot = await pacer.channel_slot("ch_1", mps)
        assert slot.granted
        assert slot.starts_at == pytest.approx(clock.now + slot.wait)
        starts.append(micros(slot.starts_at))

    assert most_in_one_second(starts) <= mps
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= send_interval_us(mps)


async def test_a_queue_is_sent_at_the_full_rate() -> None:
    clock = FakeClock()
    pacer = pacer_on(clock)
    waits = [await pacer.reserve_channel("ch_1", 80) for _ in range(200)]
    assert waits[0] == 0.0
    assert waits[80] == pytest.approx(80 * 12_501 / MICROS)
    assert waits[-1] == pytest.approx(199 * 12_501 / MICROS)


async def test_acquire_sleeps_for_the_reserved_wait() -> None:
    clock = FakeClock()
    pacer = pacer_on(clock)
    for _ in range(3):
        await pacer.acquire_channel("ch_1", 10)
    # The first goes at once; each acquire slept until its slot, so they come 0.1 s apart.
    assert clock.slept == [pytest.approx(0.100001), pytest.approx(0.100001)]


async def test_max_wait_refuses_without_consuming() -> None:
    clock = FakeClock()
    pacer = pacer_on(clock)
    assert await pacer.reserve_channel("ch_1", 10, max_wait=0.05) == 0.0
    refused = await pacer.channel_slot("ch_1", 10, max_wait=0.05)
    assert not refused.granted
    assert refused.wait == pytest.approx(0.100001)
    # Still the same slot: the refusal took nothing.
    assert await pacer.reserve_channel("ch_1", 10) == pytest.approx(0.100001)


async def test_a_changed_rate_applies_from_the_next_slot() -> None:
    clock = FakeClock()
    pacer = pacer_on(clock)
    await pacer.reserve_channel("ch_1", 1)
    assert await pacer.reserve_channel("ch_1", 100) == pytest.approx(1.000001)
    assert await pacer.reserve_channel("ch_1", 100) == pytest.approx(1.000001 + 0.010001)


# --- per recipient ---


@pytest.mark.parametrize(
    ("interval", "burst", "expected_waits"),
    [
        (6.0, 3, [0, 0, 0, 6, 12, 18]),
        (6.0, 1, [0, 6, 12]),
        (2.0, 5, [0, 0, 0, 0, 0, 2, 4]),
    ],
)
async def test_pair_burst_then_interval(
    interval: float, burst: int, expected_waits: list[float]
) -> None:
    pacer = pacer_on(FakeClock(), pair_interval=interval, pair_burst=burst)
    waits = [await pacer.reserve_pair("ch_1", "+15550001") for _ in expected_waits]
    assert waits == [pytest.approx(w) for w in expected_waits]


async def test_a_loop_to_one_number_is_slowed_to_the_pair_interval() -> None:
    clock = FakeClock()
    pacer = pacer_on(clock)
    starts = []
    for _ in range(10):
        wait = await pacer.reserve_pair("ch_1", "+15550001")
        clock.advance(wait)
        starts.append(clock.now)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert gaps == [0, 0, 6, 6, 6, 6, 6, 6, 6]


async def test_try_pair_consumes_only_when_it_grants() -> None:
    clock = FakeClock()
    pacer = pacer_on(clock)
    assert [await pacer.try_pair("ch_1", "+15550001") for _ in range(3)] == [0.0, 0.0, 0.0]
    # Refusals, however many, leave the next slot where it was.
    assert [await pacer.try_pair("ch_1", "+15550001") for _ in range(5)] == [6.0] * 5
    clock.advance(2.0)
    assert await pacer.try_pair("ch_1", "+15550001") == pytest.approx(4.0)
    clock.advance(4.0)
    assert await pacer.try_pair("ch_1", "+15550001") == 0.0
    assert await pacer.try_pair("ch_1", "+15550001") == pytest.approx(6.0)
    # A reservation after refusals queues behind the granted slots only.
    assert await pacer.reserve_pair("ch_1", "+15550001") == pytest.approx(6.0)


async def test_after_an_idle_spell_the_burst_is_back() -> None:
    clock = FakeClock()
    pacer = pacer_on(clock)
    for _ in range(3):
        await pacer.reserve_pair("ch_1", "+15550001")
    clock.advance(18.0)
    assert [await pacer.try_pair("ch_1", "+15550001") for _ in range(4)] == [0, 0, 0, 6.0]


# --- throttling ---


@pytest.mark.parametrize(
    ("mps", "steps", "expected_rates"),
    [
        # (seconds to advance, throttle?) -> rate after the step
        (80, [(0, True)], [40]),
        # A second 130429 within the hold is the same episode: cut once (recovery goes on).
        (80, [(0, True), (0.5, True)], [40, 44]),
        # +10% of the configured rate per second after a cut...
        (80, [(0, True), (1, False), (2, False), (5, False)], [40, 48, 64, 80]),
        # ...and a new cut starts from where recovery had got to.
        (80, [(0, True), (1, True), (1, False)], [40, 24, 32]),
        # Never below 1 message/s, nor above the configured rate.
        (1.5, [(0, True)], [1.0]),
        (0.5, [(0, True)], [0.5]),
        (1000, [(0, True), (1, True), (1, True)], [500, 300, 200]),
    ],
)
async def test_throttled_cuts_the_rate_and_it_recovers(
    mps: float, steps: list[tuple[float, bool]], expected_rates: list[float]
) -> None:
    clock = FakeClock()
    pacer = pacer_on(clock)
    assert await pacer.effective_rate("ch_1", mps) == mps
    rates = []
    for seconds, throttle in steps:
        clock.advance(seconds)
        if throttle:
            await pacer.throttled("ch_1")
        rates.append(await pacer.effective_rate("ch_1", mps))
    assert rates == [pytest.approx(r) for r in expected_rates]


async def test_repeated_throttling_bottoms_out_at_the_floor() -> None:
    clock = FakeClock()
    pacer = pacer_on(clock, throttle=ThrottlePolicy(recovery_per_second=0.001))
    for _ in range(20):
        await pacer.throttled("ch_1")
        clock.advance(1.0)
    assert await pacer.effective_rate("ch_1", 80) == pytest.approx(1.0)


async def test_a_throttled_channel_spaces_its_sends_at_the_lower_rate() -> None:
    clock = FakeClock()
    pacer = pacer_on(clock)
    await pacer.throttled("ch_1")
    waits = [await pacer.reserve_channel("ch_1", 80) for _ in range(5)]
    assert waits == [pytest.approx(i * 0.025001) for i in range(5)]


# --- independence and housekeeping ---


async def test_channels_and_recipients_are_independent() -> None:
    clock = FakeClock()
    pacer = pacer_on(clock)
    for _ in range(10):
        await pacer.reserve_channel("ch_1", 10)
        await pacer.reserve_pair("ch_1", "+15550001")
    await pacer.throttled("ch_1")

    assert await pacer.reserve_channel("ch_2", 10) == 0.0
    assert await pacer.effective_rate("ch_2", 10) == 10
    assert await pacer.try_pair("ch_1", "+15550002") == 0.0
    assert await pacer.try_pair("ch_2", "+15550001") == 0.0


async def test_idle_state_is_dropped() -> None:
    clock = FakeClock()
    pacer = pacer_on(clock)
    for n in range(100):
        await pacer.reserve_channel(f"ch_{n}", 80)
        await pacer.reserve_pair("ch_1", f"+1555000{n}")
    await pacer.throttled("ch_1")
    assert pacer.tracked == 201

    clock.advance(MemoryPacer.SWEEP_EVERY)
    await pacer.reserve_pair("ch_1", "+15550001")
    assert pacer.tracked == 1


async def test_state_still_in_force_survives_a_sweep() -> None:
    clock = FakeClock()
    pacer = pacer_on(clock, pair_interval=120.0)
    await pacer.reserve_pair("ch_1", "+15550001")
    clock.advance(MemoryPacer.SWEEP_EVERY)
    await pacer.reserve_channel("ch_2", 1)
    assert pacer.tracked == 2
    assert await pacer.try_pair("ch_1", "+15550001") == 0.0  # burst of 3, one used


# --- configuration ---


@pytest.mark.parametrize("mps", [0, -5, math.nan, math.inf])
async def test_a_nonsense_rate_is_refused(mps: float) -> None:
    pacer = pacer_on(FakeClock())
    with pytest.raises(ValueError):
        await pacer.reserve_channel("ch_1", mps)
    with pytest.raises(ValueError):
        await pacer.effective_rate("ch_1", mps)


@pytest.mark.parametrize(
    "options",
    [
        {"pair_interval": 0.0},
        {"pair_interval": -1.0},
        {"pair_burst": 0},
    ],
)
def test_nonsense_pair_limits_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        MemoryPacer(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [{"cut": 1.0}, {"cut": 0.0}, {"recovery_per_second": 0.0}, {"min_rate": 0.0}, {"hold": -1.0}],
)
def test_nonsense_throttle_policies_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ThrottlePolicy(**options)


async def test_make_pacer_picks_the_implementation_from_configuration(tmp_path: Path) -> None:
    from wagate.config import Settings
    from wagate.dispatch.pacers import make_pacer
    from wagate.dispatch.pacing_db import DatabasePacer
    from wagate.dispatch.pacing_failover import FailoverPacer
    from wagate.dispatch.pacing_share import SplitPacer
    from wagate.store.db import make_async_engine

    # Building the engines and pacers connects to nothing, so no server is needed here.
    sqlite = make_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    postgres = make_async_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    plain = Settings(data_dir=tmp_path, pair_interval=3.0, pair_burst=2)
    redis = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/15")
    try:
        alone = make_pacer(plain, engine=sqlite, share=lambda: 1)
        assert isinstance(alone, SplitPacer)
        assert (alone.pair_interval, alone.pair_burst) == (3.0, 2)
        assert isinstance(make_pacer(plain, engine=postgres, share=lambda: 1), DatabasePacer)
        for engine in (sqlite, postgres):
            shared: Pacer = make_pacer(redis, engine=engine, share=lambda: 1)
            assert isinstance(shared, FailoverPacer)
            assert (shared.pair_interval, shared.pair_burst) == (6.0, 45)
            await shared.aclose()
        await alone.aclose()
    finally:
        await sqlite.dispose()
        await postgres.dispose()


# --- a rate divided among the live workers (pacing_share) ---


async def test_a_split_pacer_paces_a_number_at_its_share_of_the_rate() -> None:
    from wagate.dispatch.pacing_share import SplitPacer

    clock = FakeClock()
    live = [1]
    pacer = SplitPacer(share=lambda: live[0], clock=clock, sleep=clock.sleep)
    alone = [micros((await pacer.channel_slot("ch", 100)).starts_at) for _ in range(101)]
    assert most_in_one_second(alone) == 100
    clock.advance(10)  # (well past the join hold: it only holds a worker that just started)
    live[0] = 4
    shared = [micros((await pacer.channel_slot("ch", 100)).starts_at) for _ in range(26)]
    assert most_in_one_second(shared) == 25  # a quarter of the rate
    assert await pacer.effective_rate("ch", 100) == 25


async def test_a_split_pacer_joining_others_waits_until_they_have_made_room() -> None:
    """A worker that starts while others share a rate sends nothing until they have seen its
    heartbeat and reserved their last slots at the larger share; one alone starts at once."""
    from wagate.dispatch.pacing_share import JOIN_HOLD, SplitPacer

    clock = FakeClock()
    alone = SplitPacer(share=lambda: 1, clock=clock, sleep=clock.sleep)
    assert (await alone.channel_slot("ch", 80)).wait == 0
    joining = SplitPacer(share=lambda: 2, clock=clock, sleep=clock.sleep)
    assert (await joining.channel_slot("ch", 80)).wait == pytest.approx(JOIN_HOLD)
    clock.advance(JOIN_HOLD + 1)
    later = SplitPacer(share=lambda: 2, clock=clock, sleep=clock.sleep)
    clock.advance(JOIN_HOLD)
    assert (await later.channel_slot("ch", 80)).wait == 0  # its hold is long over


async def test_a_split_pacer_holds_every_number_when_told() -> None:
    """What a FailoverPacer does when Redis goes: no number starts a send before the slots
    Redis gave out have all started."""
    from wagate.dispatch.pacing_share import SplitPacer

    clock = FakeClock()
    pacer = SplitPacer(share=lambda: 1, clock=clock, sleep=clock.sleep)
    pacer.hold_all(0.3)
    assert (await pacer.channel_slot("a", 80)).wait == pytest.approx(0.3)
    assert (await pacer.channel_slot("b", 80)).wait == pytest.approx(0.3)
    clock.advance(1)
    assert (await pacer.channel_slot("c", 80)).wait == 0


async def test_a_failover_pacer_without_redis_paces_at_its_share_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis unreachable (nothing listens at its port): each reservation goes to this worker's
    share instead, after the hold, and the log says so once, not once per send."""
    import socket

    from wagate.dispatch.pacing_failover import FailoverPacer
    from wagate.dispatch.pacing_redis import RedisPacer
    from wagate.dispatch.pacing_share import MARGIN, RESERVE_AHEAD, SplitPacer
    from wagate.store.workers import HEARTBEAT_SECONDS

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = FakeClock()
    redis = RedisPacer(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    pacer = FailoverPacer(
        redis, SplitPacer(share=lambda: 2, clock=clock, sleep=clock.sleep), clock=clock
    )
    clock.advance(HEARTBEAT_SECONDS + 1)  # a worker that has been running a while
    try:
        first = await pacer.channel_slot("ch", 100)
        assert pacer.redis_down
        assert first.wait == pytest.approx(RESERVE_AHEAD + MARGIN)
        starts = [micros((await pacer.channel_slot("ch", 100)).starts_at) for _ in range(60)]
        assert most_in_one_second(starts) == 50  # half of the rate: two workers share it
        assert sum("Redis is unreachable" in r.message for r in caplog.records) == 1
    finally:
        await pacer.aclose()
