"""Dispatchers' heartbeats: how many are alive is what a number's rate is divided by when
nothing shared paces it (SQLite, or Redis gone)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from wagate.dispatch.heartbeat import Heartbeat
from wagate.store import workers as worker_store
from wagate.store.db import make_async_engine, migrate, write_tx
from wagate.store.tables import workers


async def test_live_dispatchers_are_counted_and_gone_ones_are_not(
    database_url: str, tmp_path: Path
) -> None:
    migrate(database_url)
    engine = make_async_engine(database_url)
    try:
        one, two = Heartbeat(engine, "host:1:a"), Heartbeat(engine, "host:2:b")
        await one.beat()
        assert one.live == 1
        await two.beat()
        await one.beat()
        assert (one.live, two.live) == (2, 2)
        await two.stop()  # it leaves: the others see it gone at once
        await one.beat()
        assert one.live == 1
        # One that stopped beating (killed) counts until its heartbeat is stale.
        async with write_tx(engine) as conn:
            await worker_store.beat(
                conn, worker_id="host:3:c", host="host", pid=3, now=datetime.now(UTC)
            )
        await one.beat()
        assert one.live == 2
        async with write_tx(engine) as conn:  # ... and then it is not
            stale = datetime.now(UTC) - timedelta(seconds=worker_store.LIVE_SECONDS + 1)
            await conn.execute(
                update(workers).where(workers.c.id == "host:3:c").values(seen_at=stale)
            )
        await one.beat()
        assert one.live == 1
    finally:
        await engine.dispose()
