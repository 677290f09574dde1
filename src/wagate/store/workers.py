"""Heartbeats of the running dispatchers: how many share the business numbers' rates.

On PostgreSQL the times are the database server's own (workers on several machines need not
agree on the time); on SQLite, whose dispatchers share a machine, the caller's."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.store.tables import UTCDateTime, workers

HEARTBEAT_SECONDS = 1.0
"""How often a dispatcher says it is alive (and reads how many others are)."""
LIVE_SECONDS = 5.0
"""A dispatcher not heard from for this long is gone (one killed leaves its row behind)."""


def _now(conn: AsyncConnection, now: datetime, *, minus: float = 0.0) -> Any:
    """`now` (less `minus` seconds) as the database should take it."""
    if conn.dialect.name == "postgresql":  # naive UTC, as UTCDateTime stores times
        return func.timezone("UTC", func.now()) - timedelta(seconds=minus)
    return literal(now - timedelta(seconds=minus), UTCDateTime)


async def beat(
    conn: AsyncConnection, *, worker_id: str, host: str, pid: int, now: datetime
) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    seen = _now(conn, now)
    statement = dialect.insert(workers).values(
        id=worker_id, host=host, pid=pid, started_at=seen, seen_at=seen
    )
    await conn.execute(
        statement.on_conflict_do_update(index_elements=["id"], set_={"seen_at": seen})
    )


async def live(conn: AsyncConnection, *, now: datetime) -> int:
    """How many dispatchers were heard from lately (this one included, once it has beaten)."""
    since = _now(conn, now, minus=LIVE_SECONDS)
    result = await conn.execute(select(func.count()).where(workers.c.seen_at >= since))
    return int(result.scalar_one())


async def leave(conn: AsyncConnection, *, worker_id: str, now: datetime) -> None:
    """This dispatcher stops; rows of dispatchers long gone go with it."""
    stale = _now(conn, now, minus=LIVE_SECONDS * 12)
    await conn.execute(
        delete(workers).where((workers.c.id == worker_id) | (workers.c.seen_at < stale))
    )
