"""Which pacer a dispatcher uses, from configuration (the pacers themselves never import each
other's modules for it):

- with `WAGATE_REDIS_URL`: Redis, shared by every worker, and each worker's share of the rate
  while Redis is unreachable (`pacing_failover`);
- on PostgreSQL without Redis: the database, shared by every worker (`pacing_db`);
- on SQLite without Redis: memory, each number's rate divided among the live dispatchers (one,
  normally: `pacing_share`).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.config import Settings
from wagate.dispatch.pacing import DEFAULT_PAIR_INTERVAL, Pacer
from wagate.dispatch.pacing_share import SplitPacer

REDIS_TIMEOUT = 0.5  # seconds a pacing call to Redis may take before Redis counts as gone


def make_pacer(settings: Settings, *, engine: AsyncEngine, share: Callable[[], int]) -> Pacer:
    """`share()` is how many dispatchers are alive (this one included)."""
    pair_interval = settings.pair_interval or DEFAULT_PAIR_INTERVAL
    pair_burst = settings.pair_burst
    if settings.redis_url:
        # Imported here so that an install without Redis never loads its client.
        from wagate.dispatch.pacing_failover import FailoverPacer
        from wagate.dispatch.pacing_redis import RedisPacer

        redis = RedisPacer(
            settings.redis_url,
            pair_interval=pair_interval,
            pair_burst=pair_burst,
            timeout=REDIS_TIMEOUT,
        )
        split = SplitPacer(share=share, pair_interval=pair_interval, pair_burst=pair_burst)
        return FailoverPacer(redis, split)
    if engine.dialect.name == "postgresql":
        from wagate.dispatch.pacing_db import DatabasePacer

        return DatabasePacer(engine, pair_interval=pair_interval, pair_burst=pair_burst)
    return SplitPacer(share=share, pair_interval=pair_interval, pair_burst=pair_burst)
