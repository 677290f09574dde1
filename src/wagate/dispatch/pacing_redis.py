"""Pacing shared through Redis: every worker, on any machine, keeps to the same limits.

Each operation is one call of one Lua script, so a read-modify-write of a limit is atomic across
workers. The script takes "now" from the Redis server's TIME, so the clocks of the workers'
machines never matter, and gives every key a TTL that ends when the key would be as good as
absent, so idle channels and recipients leave nothing behind. redis-py's registered script
sends EVALSHA and loads the script on NOSCRIPT (a restarted or flushed server).

Keys carry the channel in a hash tag (`wagate:pace:{ch_1}:send`), so a channel's keys share a
Redis Cluster slot should one ever be used. Needs Redis 5 or later (scripts that read TIME and
then write are only replicated by effects from 5 on).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from wagate.dispatch.pacing import (
    DEFAULT_PAIR_BURST,
    DEFAULT_PAIR_INTERVAL,
    MICROS,
    Pacer,
    Reserved,
    Sleep,
    Slot,
    ThrottlePolicy,
    check_rate,
    throttled_rate,
)

# Mirrors gcra, recovered_factor, throttled_rate and send_interval_us in pacing.py; a change to
# one is a change to both. Times are integer microseconds of server time, which doubles (Lua's
# only numbers) hold exactly; '%.0f' and '%.17g' write them back without losing a digit.
LUA = """
local MICROS = 1000000

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * MICROS + tonumber(t[2])
end

local function factor_at(key, now, recovery)
  local p = redis.call('HMGET', key, 'factor', 'since')
  if not p[1] then return 1.0 end
  local f = tonumber(p[1]) + recovery * ((now - tonumber(p[2])) / MICROS)
  if f > 1.0 then return 1.0 end
  return f
end

-- One GCRA reservation; a negative max_wait means no limit. Returns {wait, granted, starts_at}.
local function gcra(key, now, interval, tolerance, max_wait)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local wait = tat - tolerance - now
  if wait < 0 then wait = 0 end
  if max_wait >= 0 and wait > max_wait then return {wait, 0, now + wait} end
  local new_tat = tat + interval
  -- Once the TAT has passed the key means nothing, so that is when it expires.
  redis.call('SET', key, string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
  return {wait, 1, now + wait}
end

local op = ARGV[1]
if op == 'block' then
  -- KEYS: send TAT, throttle penalty.
  -- ARGV: mps, max_wait_us, min_rate, recovery_per_second, count, span_us
  -- Up to `count` send slots at once, 1/rate apart, about span_us in all; none when the
  -- first would wait longer than max_wait (>= 0). Returns {wait, granted, starts_at, interval}.
  local mps, min_rate = tonumber(ARGV[2]), tonumber(ARGV[4])
  local now = now_us()
  local rate = math.min(mps, math.max(min_rate, mps * factor_at(KEYS[2], now, tonumber(ARGV[5]))))
  local interval = math.floor(MICROS / rate) + 1
  local tat = tonumber(redis.call('GET', KEYS[1]) or now)
  if tat < now then tat = now end
  local wait = tat - now
  local max_wait = tonumber(ARGV[3])
  if max_wait >= 0 and wait > max_wait then return {wait, 0, now + wait, interval} end
  local count = math.max(1, math.min(tonumber(ARGV[6]), math.ceil(tonumber(ARGV[7]) / interval)))
  local new_tat = tat + count * interval
  local ttl = math.ceil((new_tat - now) / 1000)
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
  return {wait, count, now + wait, interval}
elseif op == 'pair' then
  -- KEYS: pair TAT. ARGV: interval_us, tolerance_us, max_wait_us
  return gcra(KEYS[1], now_us(), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
elseif op == 'throttle' then
  -- KEYS: throttle penalty. ARGV: cut, recovery_per_second, hold_us. Returns the factor.
  local cut, recovery, hold = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
  local now = now_us()
  local since = redis.call('HGET', KEYS[1], 'since')
  if since and now - tonumber(since) < hold then
    return string.format('%.17g', factor_at(KEYS[1], now, recovery))
  end
  local f = factor_at(KEYS[1], now, recovery) * cut
  redis.call('HSET', KEYS[1], 'factor', string.format('%.17g', f),
             'since', string.format('%.0f', now))
  -- Kept until the factor is back at 1 (and the hold is over), then it is as good as absent.
  local ttl = math.max((1.0 - f) / recovery, hold / MICROS)
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000) + 1)
  return string.format('%.17g', f)
elseif op == 'hold' then
  -- KEYS: send TAT. ARGV: hold_us. No send starts before now + hold (slots given stand).
  local now = now_us()
  local hold_until = now + tonumber(ARGV[2])
  local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
  if tat < hold_until then
    redis.call('SET', KEYS[1], string.format('%.0f', hold_until),
               'PX', math.ceil((hold_until - now) / 1000) + 1)
  end
  return 1
elseif op == 'factor' then
  -- KEYS: throttle penalty. ARGV: recovery_per_second.
  return string.format('%.17g', factor_at(KEYS[1], now_us(), tonumber(ARGV[2])))
end
return redis.error_reply('unknown pacing op ' .. tostring(op))
"""


BLOCK_SECONDS = 0.02
"""A worker reserves a number's send slots this many seconds of its rate at a time, with one
call (at 1,000/s: 20 slots, fifty calls a second), and hands them out itself: one call per
send, each waiting its turn on a busy event loop, held a worker to ~500/s on a 1,000/s number.
A block never reaches more than `RESERVE_AHEAD` + this ahead, inside the margin the failover
leaves (pacing_share.MARGIN)."""
MAX_BLOCK = 100
MAX_CONNECTIONS = 32
"""Calls to Redis in flight per worker; the others wait for their turn."""


class RedisPacer(Pacer):
    """The limits in Redis, for several workers sending for the same business numbers."""

    def __init__(
        self,
        redis_url: str,
        *,
        pair_interval: float = DEFAULT_PAIR_INTERVAL,
        pair_burst: int = DEFAULT_PAIR_BURST,
        throttle: ThrottlePolicy | None = None,
        key_prefix: str = "wagate:pace",
        sleep: Sleep = asyncio.sleep,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`timeout` bounds each call (connecting included), so that a Redis that stops
        answering is noticed (`FailoverPacer`) rather than waited for."""
        super().__init__(pair_interval=pair_interval, pair_burst=pair_burst, sleep=sleep)
        self._clock = clock
        # Per number: the slots of its last block, (start on our clock, start on Redis's).
        self._blocks: dict[str, Reserved] = {}
        self.throttle_policy = throttle or ThrottlePolicy()
        self.key_prefix = key_prefix
        # Sends call in hundreds at once (WAGATE_DISPATCH_CONCURRENCY); they take turns, first
        # come first served, on MAX_CONNECTIONS connections. (redis-py's pool raises past 100 in
        # use, an error our failover took for Redis being gone: pacing flapped to the workers'
        # shares and back, and the rate halved.)
        self._calls = asyncio.Semaphore(MAX_CONNECTIONS)
        self._redis: Redis = Redis.from_url(
            redis_url,
            max_connections=MAX_CONNECTIONS + 4,  # and ping()
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self._script = self._redis.register_script(LUA)

    def send_key(self, channel_id: str) -> str:
        return f"{self.key_prefix}:{{{channel_id}}}:send"

    def throttle_key(self, channel_id: str) -> str:
        return f"{self.key_prefix}:{{{channel_id}}}:throttle"

    def pair_key(self, channel_id: str, phone: str) -> str:
        return f"{self.key_prefix}:{{{channel_id}}}:pair:{phone}"

    async def _run(self, keys: list[str], args: list[str | int | float]) -> Any:
        async with self._calls:
            return await self._script(keys=keys, args=args)

    @staticmethod
    def _slot(reply: Any) -> Slot:
        wait_us, granted, starts_at_us = (int(x) for x in reply)
        return Slot(wait_us / MICROS, starts_at_us / MICROS, bool(granted))

    @staticmethod
    def _max_wait_us(max_wait: float | None) -> int:
        return -1 if max_wait is None else max(0, round(max_wait * MICROS))

    async def channel_slot(
        self, channel_id: str, mps: float, *, max_wait: float | None = None
    ) -> Slot:
        check_rate(mps)
        slots = self._blocks.setdefault(channel_id, Reserved())
        slots.drop_passed(self._clock())
        if not slots:
            refused = await self._reserve_block(channel_id, mps, max_wait, slots)
            if refused is not None:
                return refused
        return slots.take(self._clock(), max_wait)

    async def _reserve_block(
        self,
        channel_id: str,
        mps: float,
        max_wait: float | None,
        slots: Reserved,
    ) -> Slot | None:
        """Reserve the number's next block into `slots`; the refusal when its first slot would
        wait longer than `max_wait` (nothing reserved)."""
        policy = self.throttle_policy
        count = max(1, min(MAX_BLOCK, round(mps * BLOCK_SECONDS)))
        reply = await self._run(
            [self.send_key(channel_id), self.throttle_key(channel_id)],
            [
                "block",
                mps,
                self._max_wait_us(max_wait),
                policy.min_rate,
                policy.recovery_per_second,
                count,
                round(BLOCK_SECONDS * MICROS),
            ],
        )
        answered = self._clock()
        wait_us, granted, starts_us, interval_us = (int(x) for x in reply)
        if not granted:
            return Slot(wait_us / MICROS, starts_us / MICROS, False)
        slots.add(
            answered=answered,
            now_us=starts_us - wait_us,
            first_us=starts_us,
            interval_us=interval_us,
            count=granted,
        )
        return None

    async def pair_slot(
        self, channel_id: str, phone: str, *, max_wait: float | None = None
    ) -> Slot:
        reply = await self._run(
            [self.pair_key(channel_id, phone)],
            ["pair", self._pair_interval_us, self._pair_tolerance_us, self._max_wait_us(max_wait)],
        )
        return self._slot(reply)

    async def throttled(self, channel_id: str) -> None:
        policy = self.throttle_policy
        if channel_id in self._blocks:  # slots reserved at the old rate: not used
            self._blocks[channel_id].clear()
        await self._run(
            [self.throttle_key(channel_id)],
            ["throttle", policy.cut, policy.recovery_per_second, round(policy.hold * MICROS)],
        )

    async def hold(self, channel_id: str, seconds: float) -> None:
        """Start no send for the channel in the next `seconds` (slots already given stand)."""
        if channel_id in self._blocks:
            self._blocks[channel_id].clear()
        await self._run([self.send_key(channel_id)], ["hold", max(0, round(seconds * MICROS))])

    async def ping(self) -> None:
        """Raises unless Redis answers."""
        await self._redis.ping()

    async def effective_rate(self, channel_id: str, mps: float) -> float:
        check_rate(mps)
        policy = self.throttle_policy
        reply = await self._run(
            [self.throttle_key(channel_id)], ["factor", policy.recovery_per_second]
        )
        return throttled_rate(mps, float(reply), policy)

    async def aclose(self) -> None:
        self._blocks.clear()
        await self._redis.aclose()
