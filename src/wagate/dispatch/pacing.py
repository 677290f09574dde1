"""Pacing: how fast a business number may send, and how often one person may be written to.

Meta limits each business number to its throughput (80 messages/s by default, up to 1,000) and
each (business number, recipient) pair to about one message per 6 s, with short bursts allowed.
`Pacer` is the one abstraction the dispatcher sees; `MemoryPacer` keeps the limits in this
process, `RedisPacer` (in `pacing_redis`) shares them between every worker that uses the same
Redis, `DatabasePacer` (in `pacing_db`) shares a number's rate through PostgreSQL, and
`SplitPacer` / `FailoverPacer` (in `pacing_share`) divide it among the live workers when nothing
shared is at hand. `pacers.make_pacer` picks from configuration, so the calling code never
knows which.

Both use GCRA (the generic cell rate algorithm): a limit is one number per key, the theoretical
arrival time (TAT) of the next message, and a reservation answers how long the caller must wait
instead of making it poll. The arithmetic lives here as pure functions on integer microseconds;
the Redis Lua script mirrors it line for line.
"""

from __future__ import annotations

import asyncio
import math
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MICROS = 1_000_000
DEFAULT_PAIR_INTERVAL = 6.0
DEFAULT_PAIR_BURST = 3

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Slot:
    """The answer to a reservation.

    `wait` is seconds from now until the send may start (0.0: at once). `starts_at` is the same
    moment on the pacer's clock (Redis server time for `RedisPacer`), which lets tests compare
    schedules made by different workers. `granted` is False when the slot was refused because
    `wait` exceeded the caller's `max_wait`; nothing was consumed then.
    """

    wait: float
    starts_at: float
    granted: bool


STALE_SLOT = 0.001
"""A reserved slot this far in the past is dropped rather than started late: the rate can be
under-used, never exceeded."""


class Reserved:
    """A number's send slots reserved ahead in blocks (`DatabasePacer`, `RedisPacer`), handed
    out in order: each is (its start on this process's monotonic clock, its start on the shared
    clock). A block's starts are placed on our clock from when its answer came, and never before
    the end of the block before it: an answer that came late (a busy event loop) must not let
    the next block's first sends bunch up with the last ones of the one before."""

    __slots__ = ("_end", "_slots")

    def __init__(self) -> None:
        self._slots: deque[tuple[float, float]] = deque()
        self._end = 0.0  # on our clock: one interval after the last slot placed

    def __bool__(self) -> bool:
        return bool(self._slots)

    def add(
        self, *, answered: float, now_us: int, first_us: int, interval_us: int, count: int
    ) -> None:
        """`count` slots from `first_us`, `interval_us` apart, on a shared clock that read
        `now_us` for an answer that reached us at `answered`."""
        first = max(answered + (first_us - now_us) / MICROS, self._end)
        for n in range(count):
            offset = n * interval_us
            self._slots.append((first + offset / MICROS, (first_us + offset) / MICROS))
        self._end = first + count * interval_us / MICROS

    def clear(self) -> None:
        """Give up the slots not handed out (those given stand, and still bound the next)."""
        self._slots.clear()

    def drop_passed(self, now: float) -> None:
        while self._slots and self._slots[0][0] < now - STALE_SLOT:
            self._slots.popleft()

    def take(self, now: float, max_wait: float | None) -> Slot:
        """The first slot (there is one), taken unless it would wait longer than `max_wait`."""
        start, on_server = self._slots[0]
        wait = max(0.0, start - now)
        if max_wait is not None and wait > max_wait:
            return Slot(wait, on_server, False)
        self._slots.popleft()
        return Slot(wait, on_server, True)


@dataclass(frozen=True)
class ThrottlePolicy:
    """How a channel backs off when Meta says its throughput was reached (130429).

    Each throttle multiplies the channel's rate factor by `cut`; the factor then climbs back by
    `recovery_per_second` (a share of the configured rate) every second until it is 1 again.
    Throttles within `hold` seconds of the last counted one are the same episode (the sends
    already in flight when Meta started refusing all come back at once) and cut only once.
    The rate never drops below `min_rate` messages/s (nor rises above the configured rate).
    """

    cut: float = 0.5
    recovery_per_second: float = 0.1
    min_rate: float = 1.0
    hold: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.cut < 1:
            raise ValueError("cut must be between 0 and 1")
        if self.recovery_per_second <= 0:
            raise ValueError("recovery_per_second must be positive, or a channel never recovers")
        if self.min_rate <= 0 or self.hold < 0:
            raise ValueError("min_rate must be positive and hold not negative")


# --- The arithmetic, shared by both implementations (pacing_redis.LUA mirrors it) ---


def send_interval_us(rate: float) -> int:
    """Microseconds between two sends at `rate` per second: the smallest whole number above 1/rate.

    Strictly above, so that rate + 1 consecutive sends always span more than one second: no
    one-second window, open or closed, holds more than `rate` of them.
    """
    return math.floor(MICROS / rate) + 1


def gcra(
    *, tat_us: int | None, now_us: int, interval_us: int, tolerance_us: int, max_wait_us: int | None
) -> tuple[int, int | None]:
    """One GCRA reservation: (wait in µs, the new TAT to store, or None when refused).

    A TAT in the past means the key has been idle long enough to be as good as absent. The
    tolerance is how far ahead of the TAT a send may go, i.e. (burst - 1) intervals.
    """
    tat = now_us if tat_us is None or tat_us < now_us else tat_us
    wait = max(0, tat - tolerance_us - now_us)
    if max_wait_us is not None and wait > max_wait_us:
        return wait, None
    return wait, tat + interval_us


def recovered_factor(
    penalty: tuple[float, int] | None, now_us: int, policy: ThrottlePolicy
) -> float:
    """The rate factor (0-1] now, given the last counted throttle (factor then, when)."""
    if penalty is None:
        return 1.0
    factor, since_us = penalty
    return min(1.0, factor + policy.recovery_per_second * ((now_us - since_us) / MICROS))


def throttled_rate(mps: float, factor: float, policy: ThrottlePolicy) -> float:
    """The rate a channel configured for `mps` may use with the rate factor `factor`."""
    return min(mps, max(policy.min_rate, mps * factor))


def check_rate(mps: float) -> None:
    if not mps > 0 or not math.isfinite(mps):
        raise ValueError(f"a channel's rate must be a positive number of messages/s, not {mps!r}")


def check_pair_limits(pair_interval: float, pair_burst: int) -> None:
    if not pair_interval > 0 or not math.isfinite(pair_interval):
        raise ValueError("pair_interval must be a positive number of seconds")
    if pair_burst < 1:
        raise ValueError("pair_burst must be at least 1")


# --- The abstraction ---


class Pacer(ABC):
    """Send slots per business number and per recipient; see the module docstring.

    Channel slots are strictly spaced at 1/mps (no burst): a burst after an idle spell followed
    by the steady rate would put more than mps sends in the one-second window that holds both.
    The guarantee is on reserved start times; the caller should start its send as soon as the
    wait is over.
    """

    def __init__(self, *, pair_interval: float, pair_burst: int, sleep: Sleep) -> None:
        check_pair_limits(pair_interval, pair_burst)
        self.pair_interval = float(pair_interval)
        self.pair_burst = int(pair_burst)
        self._sleep = sleep

    @property
    def _pair_interval_us(self) -> int:
        return round(self.pair_interval * MICROS)

    @property
    def _pair_tolerance_us(self) -> int:
        return (self.pair_burst - 1) * self._pair_interval_us

    @abstractmethod
    async def channel_slot(
        self, channel_id: str, mps: float, *, max_wait: float | None = None
    ) -> Slot:
        """Reserve the channel's next send slot at its (possibly throttled) rate.

        With `max_wait`, a slot further away than that is refused and nothing is consumed.
        """

    @abstractmethod
    async def pair_slot(
        self, channel_id: str, phone: str, *, max_wait: float | None = None
    ) -> Slot:
        """Reserve the next slot for messages from this channel to `phone` (Meta's pair rate)."""

    @abstractmethod
    async def throttled(self, channel_id: str) -> None:
        """Meta answered 130429 (throughput reached): slow the channel down for a while."""

    @abstractmethod
    async def effective_rate(self, channel_id: str, mps: float) -> float:
        """The rate (messages/s) the channel configured for `mps` is paced at now."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections; the pacer is unusable afterwards."""

    async def reserve_channel(
        self, channel_id: str, mps: float, *, max_wait: float | None = None
    ) -> float:
        """Seconds until the reserved send may start (0.0: now).

        With `max_wait`, an answer above it means nothing was reserved (e.g. the slot would come
        after the caller's lease ends); otherwise the slot is the caller's and must be used or
        lost, as later reservations are already behind it.
        """
        return (await self.channel_slot(channel_id, mps, max_wait=max_wait)).wait

    async def acquire_channel(self, channel_id: str, mps: float) -> None:
        """Reserve the channel's next slot and sleep until it comes."""
        wait = await self.reserve_channel(channel_id, mps)
        if wait > 0:
            await self._sleep(wait)

    async def reserve_pair(self, channel_id: str, phone: str) -> float:
        """Reserve the pair's next slot, however far off; returns the seconds to wait for it."""
        return (await self.pair_slot(channel_id, phone)).wait

    async def try_pair(self, channel_id: str, phone: str) -> float:
        """Take the pair's slot only if it is free now: 0.0 and consumed, or the wait, untouched.

        For the dispatcher, which reschedules a message rather than hold it for seconds.
        """
        return (await self.pair_slot(channel_id, phone, max_wait=0.0)).wait


class MemoryPacer(Pacer):
    """The limits in this process's memory: right for a single dispatcher.

    `clock` (seconds, monotonic) and `sleep` are seams so tests can move time. Calls never
    await between reading and writing state, so the event loop makes each one atomic.
    """

    # Idle keys are dropped at most this often (in clock seconds), so a recipient written to
    # once does not stay in memory for good, and cleaning costs nothing per call.
    SWEEP_EVERY = 60.0

    def __init__(
        self,
        *,
        pair_interval: float = DEFAULT_PAIR_INTERVAL,
        pair_burst: int = DEFAULT_PAIR_BURST,
        throttle: ThrottlePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(pair_interval=pair_interval, pair_burst=pair_burst, sleep=sleep)
        self.throttle_policy = throttle or ThrottlePolicy()
        self._clock = clock
        self._send_tat: dict[str, int] = {}
        self._pair_tat: dict[tuple[str, str], int] = {}
        self._penalty: dict[str, tuple[float, int]] = {}
        self._swept_us = self._now_us()

    @property
    def tracked(self) -> int:
        """How many channels and pairs hold state (idle ones go at the next sweep)."""
        return len(self._send_tat) + len(self._pair_tat) + len(self._penalty)

    def _now_us(self) -> int:
        return round(self._clock() * MICROS)

    def _tick(self) -> int:
        now_us = self._now_us()
        if now_us - self._swept_us >= self.SWEEP_EVERY * MICROS:
            self._sweep(now_us)
        return now_us

    def _sweep(self, now_us: int) -> None:
        self._swept_us = now_us
        self._send_tat = {k: tat for k, tat in self._send_tat.items() if tat > now_us}
        self._pair_tat = {k: tat for k, tat in self._pair_tat.items() if tat > now_us}
        policy = self.throttle_policy
        self._penalty = {
            k: p
            for k, p in self._penalty.items()
            if recovered_factor(p, now_us, policy) < 1.0 or now_us - p[1] < policy.hold * MICROS
        }

    def _slot(self, now_us: int, wait_us: int, granted: bool) -> Slot:
        return Slot(wait_us / MICROS, (now_us + wait_us) / MICROS, granted)

    async def channel_slot(
        self, channel_id: str, mps: float, *, max_wait: float | None = None
    ) -> Slot:
        check_rate(mps)
        now_us = self._tick()
        factor = recovered_factor(self._penalty.get(channel_id), now_us, self.throttle_policy)
        wait_us, tat = gcra(
            tat_us=self._send_tat.get(channel_id),
            now_us=now_us,
            interval_us=send_interval_us(throttled_rate(mps, factor, self.throttle_policy)),
            tolerance_us=0,
            max_wait_us=None if max_wait is None else round(max_wait * MICROS),
        )
        if tat is not None:
            self._send_tat[channel_id] = tat
        return self._slot(now_us, wait_us, tat is not None)

    async def pair_slot(
        self, channel_id: str, phone: str, *, max_wait: float | None = None
    ) -> Slot:
        now_us = self._tick()
        key = (channel_id, phone)
        wait_us, tat = gcra(
            tat_us=self._pair_tat.get(key),
            now_us=now_us,
            interval_us=self._pair_interval_us,
            tolerance_us=self._pair_tolerance_us,
            max_wait_us=None if max_wait is None else round(max_wait * MICROS),
        )
        if tat is not None:
            self._pair_tat[key] = tat
        return self._slot(now_us, wait_us, tat is not None)

    async def throttled(self, channel_id: str) -> None:
        now_us = self._tick()
        policy = self.throttle_policy
        penalty = self._penalty.get(channel_id)
        if penalty is not None and now_us - penalty[1] < policy.hold * MICROS:
            return
        factor = recovered_factor(penalty, now_us, policy)
        self._penalty[channel_id] = (factor * policy.cut, now_us)

    async def effective_rate(self, channel_id: str, mps: float) -> float:
        check_rate(mps)
        factor = recovered_factor(self._penalty.get(channel_id), self._tick(), self.throttle_policy)
        return throttled_rate(mps, factor, self.throttle_policy)

    def hold(self, channel_id: str, seconds: float) -> None:
        """Start no send for the channel in the next `seconds` (slots already given stand)."""
        until = self._now_us() + round(seconds * MICROS)
        self._send_tat[channel_id] = max(self._send_tat.get(channel_id, 0), until)

    async def aclose(self) -> None:
        self._send_tat.clear()
        self._pair_tat.clear()
        self._penalty.clear()
