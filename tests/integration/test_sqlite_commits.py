"""Where a SQLite COMMIT runs (store/sqlite_inline.py): on the event loop while the disk's
commits are quick, so a transaction does not keep the write lock, and every writer waiting for
it, until the loop comes round to it again; in the connection's thread once commits turn slow,
so the loop is never held for a slow fsync. And a process's log is checkpointed in a thread of
its own beside its commits. A real SQLite file; the thread each COMMIT ran on is read from
SQLite's own statement trace."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wagate.store.db import make_async_engine, migrate, write_tx
from wagate.store.sqlite_inline import (
    CHECKPOINT_INTERVAL,
    PROBE_EVERY,
    QUICK_COMMIT_SECONDS,
    InlineConnection,
    file_state,
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'wagate.db'}"
    migrate(url)
    engine = make_async_engine(url)
    async with write_tx(engine) as conn:
        await conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    yield engine
    await engine.dispose()


async def _driver(conn: AsyncConnection) -> sqlite3.Connection:
    inline = (await conn.get_raw_connection()).driver_connection
    assert isinstance(inline, InlineConnection)
    return inline.driver


async def _commit_threads(engine: AsyncEngine, transactions: int) -> list[int]:
    """Run `transactions` background write transactions; the thread each COMMIT ran on."""
    threads: list[int] = []

    def trace(statement: str) -> None:
        if statement.strip().upper().startswith("COMMIT"):
            threads.append(threading.get_ident())

    for n in range(transactions):
        async with write_tx(engine) as conn:
            (await _driver(conn)).set_trace_callback(trace)
            await conn.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": f"{n:0500d}"})
    return threads


def _database(engine: AsyncEngine) -> str:
    return str(engine.url.database)


async def test_a_transaction_commits_on_the_event_loop_while_the_disk_is_quick(
    engine: AsyncEngine,
) -> None:
    file = file_state(_database(engine))
    file.commit_seconds = 0.0
    threads = await _commit_threads(engine, 5)
    assert threads == [threading.get_ident()] * 5  # this test's event loop
    assert file.commit_seconds < QUICK_COMMIT_SECONDS  # measured: this disk is quick


async def test_once_commits_are_slow_they_go_to_the_thread_and_one_in_so_many_is_tried_again(
    engine: AsyncEngine,
) -> None:
    """As on a network volume, where each fsync takes tens of milliseconds: the loop must not
    wait for them. The disk here is quick, so the one commit tried on the loop brings the
    average down again, and the commits after it are back on the loop."""
    file = file_state(_database(engine))
    file.commit_seconds = 0.05
    file._skipped = 0
    loop_thread = threading.get_ident()
    threads = await _commit_threads(engine, PROBE_EVERY)
    on_loop = [n for n, thread in enumerate(threads) if thread == loop_thread]
    assert on_loop == [PROBE_EVERY - 1]
    async with engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM notes"))
    assert count == PROBE_EVERY  # every transaction was committed, wherever


async def test_a_process_without_an_acceptor_checkpoints_its_log_beside_its_commits(
    engine: AsyncEngine,
) -> None:
    """The log reaches the database file from a thread, at most a second after commits, well
    before SQLite's own 1,000 pages; SQLite's automatic checkpoint stays on these connections
    (it alone lets the log start over: a checkpoint that writers keep overtaking never
    completes, and the log grew to 215 MB in a minute without it)."""
    database = _database(engine)
    async with engine.connect() as conn:
        assert (await _driver(conn)).execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    await asyncio.sleep(CHECKPOINT_INTERVAL)
    await _commit_threads(engine, 1)
    checkpoint = file_state(database).checkpoint
    assert checkpoint is not None
    await checkpoint
    before = os.stat(database).st_size  # the database file, not its log
    await _commit_threads(engine, 200)
    await asyncio.sleep(CHECKPOINT_INTERVAL)
    await _commit_threads(engine, 1)
    checkpoint = file_state(database).checkpoint
    assert checkpoint is not None
    await checkpoint
    assert os.stat(database).st_size > before
