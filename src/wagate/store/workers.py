"""Heartbeats of the running dispatchers: how many share the business numbers' rates."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.store.tables import workers

HEARTBEAT_SECONDS = 1.0
"""How often a dispatcher says it is alive (and reads how many others are)."""
LIVE_SECONDS = 5.0
"""A dispatcher not heard from for this long is gone (one killed leaves its row behind)."""


async def beat(
    conn: AsyncConnection, *, worker_id: str, host: str, pid: int, now: datetime
) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(workers).values(
        id=worker_id, host=host, pid=pid, started_at=now, seen_at=now
    )
    await conn.execute(
        statement.on_conflict_do_update(index_elements=["id"], set_={"seen_at": now})
    )


async def live(conn: AsyncConnection, *, now: datetime) -> int:
    """How many dispatchers were heard from lately (this one included, once it has beaten)."""
    since = now - timedelta(seconds=LIVE_SECONDS)
    result = await conn.execute(select(func.count()).where(workers.c.seen_at >= since))
    return int(result.scalar_one())


async def leave(conn: AsyncConnection, *, worker_id: str, now: datetime) -> None:
    """This dispatcher stops; rows of dispatchers long gone go with it."""
    stale = now - timedelta(seconds=LIVE_SECONDS * 12)
    await conn.execute(
        delete(workers).where((workers.c.id == worker_id) | (workers.c.seen_at < stale))
    )
