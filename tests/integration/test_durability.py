"""SQLite's durability settings: a 202 survives power loss unless the operator says otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import text

from wagate.store.db import make_async_engine

T = TypeVar("T")


async def loop_ticks_during(work: Awaitable[T]) -> tuple[T, int, float]:
    """Await `work` while another task ticks every 5 ms: (its result, the ticks, seconds taken).
    Work that holds up the event loop leaves (next to) no ticks."""
    ticks = 0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    try:
        result = await work
    finally:
        done.set()
    took = asyncio.get_running_loop().time() - started
    await ticker
    return result, ticks, took


@pytest.mark.parametrize(
    ("setting", "expected"), [("FULL", 2), ("NORMAL", 1)], ids=["default-full", "normal"]
)
async def test_sqlite_runs_in_wal_mode_with_the_chosen_sync(
    tmp_path: Path, setting: str, expected: int
) -> None:
    engine = make_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", synchronous=setting)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == expected
    finally:
        await engine.dispose()


def test_the_default_setting_is_full() -> None:
    from wagate.config import Settings

    assert Settings.model_fields["sqlite_synchronous"].default == "FULL"


def test_an_unknown_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="WAGATE_SQLITE_SYNCHRONOUS"):
        make_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", synchronous="SOMETIMES")


async def test_a_write_waiting_for_another_writer_leaves_the_server_responsive(
    tmp_path: Path,
) -> None:
    """SQLite statements run on the event loop (store/sqlite_inline.py); one that must wait for
    another connection's lock (another process, a CLI command) waits in its thread instead, and
    goes through once the lock is free."""
    import sqlite3

    from wagate.store.db import write_tx

    path = tmp_path / "w.db"
    engine = make_async_engine(f"sqlite+aiosqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (1)")

        async def write() -> None:
            async with write_tx(engine) as conn:
                await conn.execute(text("INSERT INTO t VALUES (2)"))

        writing = asyncio.create_task(write())
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(30):  # the loop serves others while the write waits
            await asyncio.sleep(0.01)
        # Held by a wait on the loop, these 0.3 s would have lasted SQLite's busy timeout (30 s).
        assert loop.time() - started < 3.0
        assert not writing.done()
        async with engine.connect() as conn:  # readers are not held up by the writer (WAL)
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0
        other.execute("COMMIT")
        await asyncio.wait_for(writing, timeout=10)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT x FROM t ORDER BY x"))).scalars().all()
        assert rows == [1, 2]
    finally:
        other.close()
        await engine.dispose()


async def test_a_sqlite_url_with_driver_options_still_opens(tmp_path: Path) -> None:
    """Options in the URL (here the lock timeout) go to the driver as before; such a URL is not
    mistaken for a file named with its query string."""
    engine = make_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}?timeout=5")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            files = (await conn.execute(text("PRAGMA database_list"))).all()
        assert [row[2] for row in files] == [str(tmp_path / "w.db")]
    finally:
        await engine.dispose()


async def test_a_long_read_marked_for_the_thread_leaves_the_loop_serving(tmp_path: Path) -> None:
    """Statements inside `in_thread()` (the outbox and callback counts behind /metrics) run in
    the connection's thread: a long one does not hold up the loop."""
    from wagate.store.sqlite_inline import in_thread

    engine = make_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    slow = text(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000)"
        " SELECT count(*) FROM c"
    )

    async def count() -> int:
        with in_thread():
            async with engine.connect() as conn:
                return int((await conn.execute(slow)).scalar_one())

    try:
        async with engine.connect() as conn:  # connected (and warmed up) before timing
            await conn.execute(text("SELECT 1"))
        counted, ticks, _ = await loop_ticks_during(count())
        assert counted == 3000000
        # The count takes a few hundred milliseconds; on the loop it would leave no tick.
        assert ticks >= 10
    finally:
        await engine.dispose()
