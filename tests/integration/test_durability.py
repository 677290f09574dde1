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
    """Statements inside `in_thread()` (the outbox and callback counts behind /metrics, the
    callback claim) run in the connection's thread: a long one does not hold up the loop."""
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


async def test_a_claim_over_a_deep_backlog_leaves_the_loop_serving(tmp_path: Path) -> None:
    """The dispatcher's claim looks at the head of every recipient's lane, so its cost follows
    the number of recipients with queued messages. It runs in the connection's thread: with
    tens of thousands of recipients waiting, requests and paced sends go on meanwhile (on the
    loop, every send due during the claim started late, and one over 30 ms late lost its
    slot)."""
    from tests.support.harness import running_gateway

    lanes = 60_000
    async with running_gateway(
        f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", tmp_path / "data", run_dispatcher=False
    ) as h:
        await h.reply("+14155552671", text="hi")
        sent = await h.send(phone="+14155552671", message="hello")
        assert sent.status_code == 202, sent.text
        first = sent.json()["id"]
        # A backlog of one message to each of `lanes` recipients, copied from that one.
        async with h.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO messages (id, account_id, channel_id, phone, type, content,"
                    " metadata, status, attempts, created_at, updated_at)"
                    " WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n"
                    " WHERE x < :lanes)"
                    " SELECT printf('msg_backlog%08d', x), account_id, channel_id,"
                    " printf('+1999%08d', x), type, content, metadata, status, 0, created_at,"
                    " updated_at FROM messages, n WHERE id = :first"
                ),
                {"lanes": lanes, "first": first},
            )
            await conn.execute(
                text(
                    "INSERT INTO outbox (message_id, channel_id, phone, available_at, attempts)"
                    " SELECT id, channel_id, phone, created_at, 0 FROM messages"
                    " WHERE id LIKE 'msg_backlog%'"
                )
            )
        claimed, ticks, took = await loop_ticks_during(h.dispatcher.run_once())
        await h.dispatcher.stop()
        assert claimed == h.settings.dispatch_batch
        # The claim takes tens of milliseconds or more here; on the loop it would leave no tick
        # at all while it ran.
        assert ticks >= min(10, took / 0.005 / 4), (ticks, took)
