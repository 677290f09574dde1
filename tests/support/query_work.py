"""How much a piece of database work reads, as a count rather than a time (the same on any
machine): SQLite's virtual-machine steps, or the table rows PostgreSQL read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")

_PG_READ = text(
    "SELECT COALESCE(SUM(seq_tup_read + COALESCE(idx_tup_fetch, 0)), 0)"
    " FROM pg_stat_xact_user_tables"
)


async def work_of(conn: AsyncConnection, work: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """Run `work` (statements on `conn`, inside its open transaction) and count what it read:
    on SQLite the virtual machine's steps in hundreds (every row visited costs steps), on
    PostgreSQL the table rows read, by scans and through indexes (this transaction's
    statistics)."""
    if conn.dialect.name == "sqlite":
        raw = (await conn.get_raw_connection()).driver_connection
        database = raw._connection  # the sqlite3 connection under aiosqlite's
        steps = 0

        def step() -> int:
            nonlocal steps
            steps += 1
            return 0

        database.set_progress_handler(step, 100)
        try:
            result = await work()
        finally:
            database.set_progress_handler(None, 100)
        return result, steps
    before = int((await conn.execute(_PG_READ)).scalar_one())
    result = await work()
    after = int((await conn.execute(_PG_READ)).scalar_one())
    return result, after - before
