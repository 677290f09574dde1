"""The accept path (issue 16): a lone request commits at once, requests that arrive during a
commit share the next one, and on a SQLite file the statements that run straight on the driver
store exactly what SQLAlchemy's would."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wagate import secret_box
from wagate.api.acceptor import CROWD, Acceptor
from wagate.clock import ManualClock
from wagate.domain.errors import InvalidToken, OutsideServiceWindow, ValidationFailed
from wagate.domain.messages import parse_send_request
from wagate.domain.models import InboundMessage
from wagate.store import accounts as account_store
from wagate.store.accept_rows_sqlite import DirectRows
from wagate.store.accepts import AcceptRequest, accept_batch, accept_rows
from wagate.store.db import DirectWriter, _write_lock, make_async_engine, migrate, write_tx
from wagate.store.idempotency import Replayed
from wagate.store.sqlite_inline import CHECKPOINT_INTERVAL, file_state
from wagate.store.statuses import record_inbound
from wagate.store.tables import messages

OPEN = ["+14155552671", "+919876543210"]  # customers who wrote in
CLOSED = "+447911123456"  # never did


async def _setup(engine: AsyncEngine, clock: ManualClock) -> str:
    """An account with two numbers, two customers with open windows; its API token."""
    now = clock.now()
    async with write_tx(engine) as conn:
        account = await account_store.create_account(conn, name="a", now=now)
        for n in (1, 2):
            channel = await account_store.add_channel(
                conn, account_id=account["id"], phone_number_id=str(n), waba_id="w",
                access_token="t", app_secret="s", verify_token="v", graph_url="http://x",
                mps=80, now=now + timedelta(seconds=n), display_phone_number=f"1555000000{n}",
            )  # fmt: skip
            for phone in OPEN:
                inbound = InboundMessage(str(n), phone[1:], f"w.{n}{phone}", now, "text")
                await record_inbound(conn, channel=channel, message=inbound, now=now)
        token, _ = await account_store.create_token(
            conn, account_id=account["id"], name="t", now=now
        )
    return token


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'wagate.db'}"
    migrate(url)
    engine = make_async_engine(url)
    yield engine
    await engine.dispose()


class TickingClock(ManualClock):
    """Each reading a millisecond after the last: each batch has a time of its own."""

    def now(self) -> datetime:
        self.advance(milliseconds=1)
        return super().now()


def _send(token: str, **fields: Any) -> AcceptRequest:
    return AcceptRequest(token, parse_send_request(fields))


async def _commits(engine: AsyncEngine) -> list[int]:
    """How many messages each commit stored, in order: a batch's messages share its time."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(func.count()).select_from(messages).group_by(messages.c.created_at)
            .order_by(messages.c.created_at)
        )  # fmt: skip
        return [n for (n,) in rows]


async def test_a_lone_request_commits_in_its_own_task(database_url: str, tmp_path: Path) -> None:
    """With nothing else storing, a send goes straight to its transaction from the request's own
    task: no hand-off to a batching task, each of which waits its turn on a busy event loop."""
    migrate(database_url)
    engine = make_async_engine(database_url)
    clock = ManualClock()
    acceptor = Acceptor(engine, clock)
    try:
        token = await _setup(engine, clock)
        started: list[str] = []
        loop = asyncio.get_running_loop()
        default_factory = loop.get_task_factory()

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            started.append(getattr(coro, "__qualname__", "?"))
            if default_factory is not None:
                return default_factory(loop, coro, **kwargs)
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(factory)
        try:
            outcome = await acceptor.accept(_send(token, phone=OPEN[0], message="alone"))
        finally:
            loop.set_task_factory(default_factory)
        assert isinstance(outcome, dict), outcome
        assert [s for s in started if "Acceptor" in s] == []
        assert await _commits(engine) == [1]
    finally:
        await acceptor.aclose()
        await engine.dispose()


async def test_requests_arriving_during_a_commit_share_the_next_one(
    sqlite_engine: AsyncEngine,
) -> None:
    """While a commit waits (here for another writer's lock), arrivals queue and go together;
    on SQLite a second batch may wait in line behind the first."""
    clock = TickingClock()
    token = await _setup(sqlite_engine, clock)
    acceptor = Acceptor(sqlite_engine, clock)
    lock = _write_lock(sqlite_engine)
    try:
        await lock.acquire()  # another writer of this process holds the database
        first = asyncio.ensure_future(acceptor.accept(_send(token, phone=OPEN[0], message="first")))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(
            acceptor.accept(_send(token, phone=OPEN[0], message="second"))
        )
        await asyncio.sleep(0)
        rest = [
            asyncio.ensure_future(acceptor.accept(_send(token, phone=p, message=f"m{i}")))
            for i in range(4)
            for p in OPEN
        ]
        await asyncio.sleep(0.05)
        assert not first.done()  # 202 only once stored
        lock.release()
        outcomes = await asyncio.gather(first, second, *rest)
        assert all(isinstance(o, dict) for o in outcomes), outcomes
        # The lone first, the second in line behind it, then the eight that came meanwhile.
        assert await _commits(sqlite_engine) == [1, 1, 8]
    finally:
        if lock.locked():
            lock.release()
        await acceptor.aclose()


@pytest.mark.parametrize(
    ("crowded", "commits"),
    [(False, [1] * 8), (True, [1, 1, 6])],
    ids=["a-lone-client", "a-crowded-server"],
)
async def test_sends_read_in_one_turn_share_commits_when_the_server_is_crowded(
    sqlite_engine: AsyncEngine, crowded: bool, commits: list[int]
) -> None:
    """uvicorn reads every request that has arrived in one turn of the event loop and starts a
    task for each before any runs. A send that finds nothing else storing commits on the loop at
    once, which is quickest for a client alone; but with others read and waiting, each would do
    the same in turn (one fsync per request, the loop stopped for each, nothing ever batched:
    a third of the throughput at 64 connections). While the server holds more than `CROWD`
    (its count of requests read and not answered), the first commits in the connection's thread
    and those behind it gather into the next batch."""
    clock = TickingClock()
    token = await _setup(sqlite_engine, clock)
    held = CROWD + 4 if crowded else 1  # the server's count of requests read, not answered
    acceptor = Acceptor(sqlite_engine, clock, in_flight=lambda: held)
    try:
        sends = [
            asyncio.ensure_future(acceptor.accept(_send(token, phone=OPEN[i % 2], message=f"{i}")))
            for i in range(8)
        ]
        outcomes = await asyncio.gather(*sends)
        assert all(isinstance(o, dict) for o in outcomes), outcomes
        assert await _commits(sqlite_engine) == commits
    finally:
        await acceptor.aclose()


async def test_a_failed_commit_refuses_its_batch_and_the_next_one_works(
    sqlite_engine: AsyncEngine,
) -> None:
    clock = ManualClock()
    token = await _setup(sqlite_engine, clock)
    acceptor = Acceptor(sqlite_engine, clock)
    try:
        async with write_tx(sqlite_engine) as conn:
            await conn.execute(text("ALTER TABLE outbox RENAME TO outbox_gone"))
        refused = await acceptor.accept(_send(token, phone=OPEN[0], message="lost"))
        assert getattr(refused, "code", None) == "service_unavailable"
        async with write_tx(sqlite_engine) as conn:
            await conn.execute(text("ALTER TABLE outbox_gone RENAME TO outbox"))
        accepted = await acceptor.accept(_send(token, phone=OPEN[0], message="kept"))
        assert isinstance(accepted, dict)
        async with sqlite_engine.connect() as conn:
            stored = (await conn.execute(select(messages.c.id))).scalars().all()
        assert stored == [accepted["id"]]
    finally:
        await acceptor.aclose()


def _batch(token: str) -> list[AcceptRequest]:
    """Every kind of outcome the accept transaction decides."""
    return [
        _send(token, phone=OPEN[0], message="plain"),
        _send(token, phone=OPEN[1], message="by number", channel="2"),
        _send(token, phone=OPEN[1], message="by display number", channel="+15550000002"),
        _send(token, phone=OPEN[0], message="keyed", idempotency_key="k1", metadata={"a": 1}),
        _send(token, phone=OPEN[0], message="keyed", idempotency_key="k1", metadata={"a": 1}),
        _send(token, phone=OPEN[0], message="other", idempotency_key="k2"),
        _send(token, phone=CLOSED, message="window closed"),
        _send(token, phone=OPEN[0], message="no such number", channel="9"),
        _send("wg_unknown", phone=OPEN[0], message="bad token"),
        _send(token, phone=OPEN[1], message="x", header="h", buttons=[{"id": "a", "title": "A"}]),
    ]


def _shape(outcome: Any, channel_names: dict[str, str]) -> Any:
    if isinstance(outcome, dict):
        channel = channel_names[outcome["channel_id"]]
        return ("stored", outcome["phone"], channel, outcome["window_expires_at"])
    if isinstance(outcome, Replayed):
        return ("replayed", outcome.status_code)
    return (type(outcome).__name__, getattr(outcome, "code", None))


async def _channel_names(conn: AsyncConnection) -> dict[str, str]:
    rows = await conn.execute(text("SELECT id, phone_number_id FROM channels"))
    return {channel_id: f"channel {number}" for channel_id, number in rows}


async def _dump(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of every table, ids made by the setup or the accepting replaced by stand-ins
    (messages numbered in the order they were stored, then by text)."""
    async with engine.connect() as conn:
        order = await conn.execute(
            text("SELECT id FROM messages ORDER BY created_at, json_extract(content, '$.body')")
        )
        names = {message_id: f"message{n}" for n, (message_id,) in enumerate(order)}
        names |= await _channel_names(conn)

    def stable(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for real, alias in names.items():
            value = value.replace(real, alias)
        if value.startswith(secret_box.PREFIX):  # sealed with a fresh IV each time
            return "(sealed)"
        return "(id)" if value.startswith(("acc_", "tok_")) else value

    dump: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        tables = await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        for (table,) in list(tables):
            rows = await conn.execute(text(f'SELECT * FROM "{table}"'))
            dump[table] = sorted((tuple(stable(v) for v in row) for row in rows), key=repr)
    return dump


async def test_both_ways_of_accepting_store_the_same_rows(tmp_path: Path) -> None:
    """On a SQLite file the accept transaction's SQL runs straight on the driver; through
    SQLAlchemy (PostgreSQL, an in-memory SQLite) it is built by Core. The same batches on two
    copies of one database must answer the same and leave the same rows (a write added to one
    way of accepting and not the other shows here)."""
    clock = ManualClock()
    engines = []
    for name in ("core", "direct"):
        url = f"sqlite+aiosqlite:///{tmp_path / name}.db"
        migrate(url)
        engines.append(make_async_engine(url))
    core, direct = engines
    try:
        tokens = [await _setup(engine, ManualClock(clock.now())) for engine in engines]
        results: list[list[Any]] = [[], []]
        writer = DirectWriter(direct)
        for _ in range(2):  # the second round replays the keys of the first
            clock.advance(minutes=2)  # a token's last use is written at most once a minute
            async with write_tx(core) as conn:
                results[0] += await accept_batch(conn, _batch(tokens[0]), now=clock.now())
            async with writer.transaction() as driver:
                results[1] += await accept_rows(
                    DirectRows(driver), _batch(tokens[1]), now=clock.now()
                )
        await writer.aclose()
        shapes = []
        for engine, outcomes in zip(engines, results, strict=True):
            async with engine.connect() as conn:
                channel_names = await _channel_names(conn)
            shapes.append([_shape(o, channel_names) for o in outcomes])
        assert shapes[0] == shapes[1]
        shapes = shapes[0]
        assert shapes.count(("replayed", 202)) == 2  # k1 and k2 in the second round
        assert ("OutsideServiceWindow", OutsideServiceWindow.code) in shapes
        assert ("InvalidToken", InvalidToken.code) in shapes
        assert (ValidationFailed.__name__, "unknown_channel") in shapes
        dumps = [await _dump(engine) for engine in engines]
        assert len(dumps[0]["messages"]) == 10
        # Every table alike, but the token's hash and prefix (each setup made its own token).
        for dump in dumps:
            dump["api_tokens"] = [r[:3] + r[5:] for r in dump["api_tokens"]]
        assert dumps[0] == dumps[1]
        assert dumps[0]["api_tokens"][0][4] is not None  # last_used_at was written
    finally:
        for engine in engines:
            await engine.dispose()


async def _checkpointed(database: str) -> None:
    """Wait for the checkpoint the last commit started."""
    checkpoint = file_state(database).checkpoint
    assert checkpoint is not None
    await checkpoint


async def test_the_write_ahead_log_is_checkpointed_beside_the_accepts(
    sqlite_engine: AsyncEngine,
) -> None:
    """The acceptor's commits leave checkpoints to a thread of their own (SQLite's automatic
    one would run inside a commit, every writer waiting): the log still reaches the database
    file, well before SQLite's own 1,000-page threshold."""
    clock = ManualClock()
    token = await _setup(sqlite_engine, clock)
    acceptor = Acceptor(sqlite_engine, clock)
    database = str(sqlite_engine.url.database)
    try:
        await acceptor.accept(_send(token, phone=OPEN[0], message="first"))
        await _checkpointed(database)
        before = os.stat(database).st_size  # the database file, not its log
        for n in range(30):
            await acceptor.accept(_send(token, phone=OPEN[n % 2], message=f"m{n}"))
        await asyncio.sleep(CHECKPOINT_INTERVAL)
        await acceptor.accept(_send(token, phone=OPEN[0], message="last"))
        await _checkpointed(database)
        assert os.stat(database).st_size > before
        with sqlite3.connect(database) as check:
            assert check.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        await acceptor.aclose()
