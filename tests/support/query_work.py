"""How much a piece of database work reads, as a count rather than a time (the same on any
machine): SQLite's virtual-machine steps, or the table rows PostgreSQL read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.support.databases import fresh_database
from wagate.store import accounts as account_store
from wagate.store.accounts import Channel
from wagate.store.db import write_tx

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


async def acme(engine: AsyncEngine, now: datetime) -> tuple[dict[str, Any], Channel]:
    """A tenant to fill with rows: the account `acme` and its number (phone number id 111)."""
    async with write_tx(engine) as conn:
        account = await account_store.create_account(conn, name="acme", now=now)
        channel = await account_store.add_channel(
            conn, account_id=account["id"], phone_number_id="111", waba_id="w",
            access_token="t", app_secret="s", verify_token="v", graph_url="http://x",
            mps=80, now=now,
        )  # fmt: skip
    return account, channel


async def work_undone(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    then: Callable[[AsyncConnection], Awaitable[Any]] | None = None,
) -> tuple[T, int, Any]:
    """`work` on a filled database, counted (`work_of`), in a transaction rolled back after
    `then` has looked at what it did; on PostgreSQL after the statistics autovacuum would
    have gathered (ANALYZE)."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
    async with engine.connect() as conn:
        await conn.begin()
        result, count = await work_of(conn, lambda: work(conn))
        seen = await then(conn) if then is not None else None
        await conn.rollback()
    return result, count, seen


async def work_by_size(
    kind: str,
    root: Path,
    measure: Callable[[str, int], Awaitable[int]],
    sizes: Sequence[int] = (200, 20_000),
) -> dict[int, int]:
    """`measure(url, size)` on a fresh database of `kind` ("sqlite" or "postgresql") for each
    size of what waits or is stored: the work it counted at each."""
    work = {}
    for size in sizes:
        with fresh_database(kind, root / str(size)) as url:
            work[size] = await measure(url, size)
    return work
