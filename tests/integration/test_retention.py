"""Retention (SPEC §10, issue 13 point 4): what grows with traffic is deleted once older than its
setting, in small batches, never a message still queued, and never leaving rows that point at a
deleted message. SQLite and PostgreSQL, with a clock the test moves."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from tests.support.harness import Harness, running_gateway
from tests.support.query_work import acme, work_by_size, work_undone
from wagate.clock import ManualClock
from wagate.config import Settings
from wagate.dispatch.pruner import Pruner
from wagate.store.db import make_async_engine, migrate, write_tx
from wagate.store.retention import prune_messages
from wagate.store.tables import (
    accounts,
    callback_deliveries,
    idempotency_keys,
    inbound_messages,
    message_events,
    messages,
    outbox,
    outbox_lanes,
    pending_statuses,
    webhook_events,
)

OLD, NEW, QUEUED = "+14155552671", "+919876543210", "+447911123456"


async def _count(gateway: Harness, table: Any, *where: Any) -> int:
    async with gateway.engine.connect() as conn:
        query = select(func.count()).select_from(table).where(*where)
        return int((await conn.execute(query)).scalar_one())


async def _orphans(gateway: Harness) -> int:
    """Rows that refer to a message that is gone."""
    gone = """SELECT count(*) FROM {table} t WHERE t.{column} IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = t.{column})"""
    total = 0
    async with gateway.engine.connect() as conn:
        for table, column in (
            ("message_events", "message_id"),
            ("callback_deliveries", "message_id"),
            ("idempotency_keys", "message_id"),
            ("outbox", "message_id"),
        ):
            total += int(
                (await conn.execute(text(gone.format(table=table, column=column)))).scalar_one()
            )
    return total


async def _traffic(gateway: Harness, phone: str, text_: str, **extra: Any) -> str:
    """A customer writes, is answered, and the answer is read. (A template: the sandbox's
    customers write at the real time, which the moved clock may put more than a day ago.)"""
    await gateway.reply(phone, text="hello")
    await gateway.client.post("/v1/templates/sync", headers=gateway.auth)
    body = {"phone": phone, "template": "hello_world", "language": "en_US"} | extra
    response = await gateway.client.post("/v1/messages/template", json=body, headers=gateway.auth)
    assert response.status_code == 202, response.text
    assert text_
    message_id: str = response.json()["id"]
    await gateway.wait_status(message_id, "read")
    return message_id


async def _with_callbacks(gateway: Harness) -> None:
    # Nothing listens there: the deliveries stay on record (pending, then failed).
    async with write_tx(gateway.engine) as conn:
        await conn.execute(
            update(accounts).values(callback_url="http://127.0.0.1:9/events", callback_secret="s")
        )


async def _park(gateway: Harness, at: datetime) -> None:
    channel = await gateway.sandbox_channel()
    async with write_tx(gateway.engine) as conn:
        await conn.execute(
            pending_statuses.insert().values(
                channel_id=channel.id,
                wamid="wamid.never",
                status="delivered",
                occurred_at=at,
                errors=[],
                received_at=at,
            )
        )


async def test_old_rows_go_and_young_or_queued_ones_stay(database_url: str, tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_gateway(database_url, tmp_path / "data", clock=clock) as gateway:
        await _with_callbacks(gateway)
        old = await _traffic(gateway, OLD, "a month ago", idempotency_key="old-key")
        await _park(gateway, clock.now())
        await gateway.reply(QUEUED, text="hi")
        await gateway.dispatcher.stop()  # so that the next one stays queued
        queued = (await gateway.send(phone=QUEUED, message="still queued")).json()["id"]
        assert await _count(gateway, callback_deliveries, callback_deliveries.c.lane == old) > 0

        # Waiting for a retry (as after Meta's throttling) is still queued: the message and its
        # lane are due later (what recording a retry does).
        async with write_tx(gateway.engine) as conn:
            later = clock.now() + timedelta(days=90)
            await conn.execute(update(outbox).values(available_at=later))
            await conn.execute(update(outbox_lanes).values(due_at=later))
        clock.advance(days=31)
        gateway.dispatcher.start()
        new = await _traffic(gateway, NEW, "today", idempotency_key="new-key")
        await gateway.dispatcher.stop()

        pruner = Pruner(engine=gateway.engine, settings=gateway.settings, clock=clock)
        deleted = await pruner.prune(pause=0)
        assert deleted["messages"] == 1
        assert await _count(gateway, messages, messages.c.id == old) == 0
        assert await _count(gateway, message_events, message_events.c.message_id == old) == 0
        assert await _count(gateway, callback_deliveries, callback_deliveries.c.lane == old) == 0
        assert await _count(gateway, idempotency_keys, idempotency_keys.c.key == "old-key") == 0
        # The queued one is as old, but still to be sent; today's stays with everything it has.
        for kept in (queued, new):
            assert await _count(gateway, messages, messages.c.id == kept) == 1
            assert await _count(gateway, message_events, message_events.c.message_id == kept) > 0
        assert await _count(gateway, idempotency_keys, idempotency_keys.c.key == "new-key") == 1
        assert await _count(gateway, callback_deliveries, callback_deliveries.c.lane == new) > 0
        assert await _count(gateway, inbound_messages, inbound_messages.c.phone == OLD) == 0
        assert await _count(gateway, inbound_messages, inbound_messages.c.phone == NEW) == 1
        assert await _count(gateway, pending_statuses) == 0
        assert await _count(gateway, webhook_events) > 0  # today's (kept 7 days)
        assert await _orphans(gateway) == 0
        # A second round finds nothing more.
        assert sum((await pruner.prune(pause=0)).values()) == 0

        # The queued message goes once it is done (here: failed, its window long closed) and
        # old enough.
        async with write_tx(gateway.engine) as conn:
            await conn.execute(update(outbox).values(available_at=clock.now()))
            await conn.execute(update(outbox_lanes).values(due_at=clock.now()))
        gateway.dispatcher.start()
        await gateway.wait_status(queued, "failed")
        clock.advance(days=31)
        await gateway.dispatcher.stop()
        await pruner.prune(pause=0)
        assert await _count(gateway, messages) == 0
        assert await _orphans(gateway) == 0


async def test_pruning_goes_in_small_batches_and_a_zero_keeps_for_ever(
    database_url: str, tmp_path: Path
) -> None:
    clock = ManualClock()
    async with running_gateway(
        database_url, tmp_path / "data", clock=clock, retention_batch=2
    ) as gateway:
        await gateway.reply(OLD, text="hi")
        ids = [(await gateway.send(phone=OLD, message=f"m{n}")).json()["id"] for n in range(5)]
        for message_id in ids:
            await gateway.wait_status(message_id, "read")
        await gateway.dispatcher.stop()
        clock.advance(days=31)
        forever = Settings(**gateway.settings.model_dump() | {"retention_messages_days": 0})
        keeper = Pruner(engine=gateway.engine, settings=forever, clock=clock)
        assert "messages" not in await keeper.prune(pause=0)
        assert await _count(gateway, messages) == 5

        pruner = Pruner(engine=gateway.engine, settings=gateway.settings, clock=clock)
        [rule] = [r for r in pruner.rules if r.name == "messages"]
        age = pruner.age(rule)
        assert age is not None
        assert await pruner._batch(rule, age) == 2  # one transaction takes two
        assert await _count(gateway, messages) == 3
        assert (await pruner.prune(pause=0))["messages"] == 3
        assert await _orphans(gateway) == 0


async def test_several_workers_prune_together_without_harm(
    database_url: str, tmp_path: Path
) -> None:
    clock = ManualClock()
    async with running_gateway(
        database_url, tmp_path / "data", clock=clock, retention_batch=3
    ) as gateway:
        await gateway.reply(OLD, text="hi")
        ids = [(await gateway.send(phone=OLD, message=f"m{n}")).json()["id"] for n in range(12)]
        for message_id in ids:
            await gateway.wait_status(message_id, "read")
        await gateway.dispatcher.stop()
        clock.advance(days=31)
        engines = [make_async_engine(database_url) for _ in range(3)]
        try:
            pruners = [Pruner(engine=e, settings=gateway.settings, clock=clock) for e in engines]
            rounds = await asyncio.gather(*(p.prune(pause=0) for p in pruners))
            # Whoever got there first did it; the others skipped or found nothing.
            for pruner in pruners:
                await pruner.prune(pause=0)
        finally:
            for engine in engines:
                await engine.dispose()
        assert sum(r.get("messages", 0) for r in rounds) <= 12
        assert await _count(gateway, messages) == 0
        assert await _orphans(gateway) == 0


async def test_the_dispatcher_prunes_in_the_background(database_url: str, tmp_path: Path) -> None:
    """`wagate serve` and `wagate worker` prune as they dispatch."""
    clock = ManualClock()
    async with running_gateway(
        database_url, tmp_path / "data", clock=clock, retention_interval=0.05
    ) as gateway:
        old = await _traffic(gateway, OLD, "old")
        clock.advance(days=31)
        for _ in range(200):
            if await _count(gateway, messages, messages.c.id == old) == 0:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the background pruner never deleted the old message")
        assert await _orphans(gateway) == 0


async def _pruning_work(url: str, stored: int) -> int:
    """8 finished messages a month old, each with its 3 status callbacks, and `stored` callbacks
    of younger messages kept beside them. How much pruning the 8 reads
    (tests/support/query_work.py)."""
    migrate(url)
    engine = make_async_engine(url)
    now = ManualClock().now()
    old, young = now - timedelta(days=40), now - timedelta(hours=1)
    try:
        account, channel = await acme(engine, old)
        async with write_tx(engine) as conn:
            await conn.execute(
                messages.insert(),
                [
                    {"id": f"msg_old{n:04d}", "account_id": account["id"],
                     "channel_id": channel.id, "phone": OLD, "type": "text",
                     "content": {"text": "hi"}, "metadata": {}, "status": "read",
                     "created_at": old, "updated_at": old}
                    for n in range(8)
                ],
            )  # fmt: skip

        def event(n: int, message_id: str, at: datetime) -> dict[str, Any]:
            return {"id": f"cb_{message_id}_{n}", "account_id": account["id"],
                    "type": "message.status", "lane": message_id, "message_id": message_id,
                    "payload": {"status": "read"}, "status": "delivered",
                    "available_at": at, "created_at": at}  # fmt: skip

        rows = [event(n, f"msg_old{m:04d}", old) for m in range(8) for n in range(3)]
        rows += [event(n % 3, f"msg_new{n // 3:06d}", young) for n in range(stored)]
        for i in range(0, len(rows), 2000):
            async with write_tx(engine) as conn:
                await conn.execute(callback_deliveries.insert(), rows[i : i + 2000])
        deleted, work, left = await work_undone(
            engine,
            lambda conn: prune_messages(conn, now - timedelta(days=30), 100),
            lambda conn: conn.scalar(select(func.count()).select_from(callback_deliveries)),
        )
        assert deleted == 8
        assert left == stored  # the old messages' callbacks went with them, the rest stay
        return work
    finally:
        await engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_pruning_a_message_reads_its_own_callbacks_not_all_of_them(
    kind: str, tmp_path: Path
) -> None:
    """A batch of old messages goes with its status callbacks through an index: with 20,000
    younger callbacks stored it reads what it reads with 200. (Before, it found them by lane,
    which no full index covers: every batch read the whole callback table, holding the write
    lock the while.)"""
    work = await work_by_size(kind, tmp_path, _pruning_work)
    print(f"\npruning 8 messages, work by callbacks stored: {work}")
    assert work[20_000] <= work[200] * 1.2, work
