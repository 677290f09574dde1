"""A write that finds another process holding SQLite's lock (a `wagate worker` beside the
`wagate api`, a CLI command) goes through as soon as the lock is free.

SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms and more between its tries, so a
writer waiting for a lock held 60 ms found it free 78 ms in at the earliest (18 ms late), and
later ones far more late (up to 100 ms a try). store/sqlite_inline.py tries again every
millisecond or less instead, for a second, and only then leaves the wait to SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.store import sqlite_inline
from wagate.store.db import make_async_engine, write_tx


async def _engine(path: Path) -> AsyncEngine:
    engine = make_async_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    return engine


async def _held_then_released(
    engine: AsyncEngine, other: sqlite3.Connection, hold: float, value: int
) -> float:
    """`other` holds the write lock for `hold` seconds while we write `value`; returns how long
    after the release our transaction had committed."""
    loop = asyncio.get_running_loop()
    committed: list[float] = []

    async def write() -> None:
        async with write_tx(engine) as conn:
            await conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": value})
        committed.append(loop.time())

    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (0)")
    writing = asyncio.create_task(write())
    await asyncio.sleep(hold)
    assert not writing.done()  # it waits for the lock (in its thread: the loop runs on)
    other.execute("COMMIT")
    released = loop.time()
    await asyncio.wait_for(writing, timeout=30)
    return committed[0] - released


async def test_a_write_goes_as_soon_as_another_processs_lock_is_free(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    engine = await _engine(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        late = [await _held_then_released(engine, other, 0.06, n) for n in range(1, 8)]
        # SQLite's handler: 18 ms late or more every time. The median leaves room for a
        # machine that stalls a thread now and then.
        assert statistics.median(late) < 0.008, late
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT x FROM t WHERE x > 0 ORDER BY x"))).scalars()
            assert list(rows) == list(range(1, 8))  # every write went through, once
    finally:
        other.close()
        await engine.dispose()


async def test_a_long_wait_is_left_to_sqlite_and_still_goes_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the polling (here 10 ms instead of a second), SQLite's busy handler waits out the
    rest of the patience: the write still goes through once the lock is free."""
    monkeypatch.setattr(sqlite_inline, "BUSY_POLL_SECONDS", 0.01)
    path = tmp_path / "w.db"
    engine = await _engine(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        late = await _held_then_released(engine, other, 0.3, 1)
        assert late < 10
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t WHERE x = 1"))).scalar() == 1
    finally:
        other.close()
        await engine.dispose()
