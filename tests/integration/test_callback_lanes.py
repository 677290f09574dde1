"""Callbacks by account: a receiver that hangs holds only its account's share of the sender's
slots, a receiver that is down is probed once per retry (not once per waiting event), one that
refuses a single event holds up only that event's lane, and a claim reads what it takes however
many events a failing account has waiting. SQLite and PostgreSQL; receivers are real HTTP
servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from tests.integration.test_callbacks import deliveries, eventually, set_callback
from tests.support.callback_receiver import Receiver, receiving
from tests.support.harness import Harness, running_gateway
from tests.support.processes import free_port
from tests.support.query_work import acme, work_by_size, work_of, work_undone
from wagate.clock import ManualClock, SystemClock
from wagate.domain.callbacks import RetryPolicy, iso
from wagate.domain.models import InboundMessage
from wagate.store import accounts as account_store
from wagate.store import callback_claims, callback_log
from wagate.store import callbacks as callback_store
from wagate.store.accounts import Channel
from wagate.store.callback_claims import Attempt
from wagate.store.db import make_async_engine, migrate, write_tx
from wagate.store.tables import callback_accounts

CUSTOMERS = [f"+1415555{7000 + n:04d}" for n in range(12)]


async def _other_account(gateway: Harness, url: str) -> tuple[Channel, str]:
    """A second tenant with its own number and callback URL; its channel and signing secret."""
    now = gateway.clock.now()
    async with write_tx(gateway.engine) as conn:
        account = await account_store.create_account(conn, name="globex", now=now)
        channel = await account_store.add_channel(
            conn, account_id=account["id"], phone_number_id="555000111", waba_id="w2",
            access_token="t", app_secret="s", verify_token="v", graph_url="http://x",
            mps=80, now=now,
        )  # fmt: skip
        settings = await callback_log.set_callback(conn, account_id=account["id"], url=url)
    assert settings.callback_secret is not None
    return channel, settings.callback_secret


async def _customers_write(
    gateway: Harness, channel: Channel, phones: list[str], text: str = "hi"
) -> None:
    """Inbound messages to `channel` (one per customer, each its own lane), as the webhook
    receiver stores them: a `message.inbound` event each for the account's callback URL."""
    now = gateway.clock.now()
    received = [
        (channel, InboundMessage(channel.phone_number_id, phone[1:], f"wamid.{phone}{text}", now,
                                 "text", text=text))
        for phone in phones
    ]  # fmt: skip
    async with write_tx(gateway.engine) as conn:
        await callback_store.enqueue_inbound_events(conn, received, now=now)
    gateway.dispatcher.callbacks.wake()


async def test_a_hanging_receiver_holds_only_its_accounts_share_of_the_slots(
    database_url: str, tmp_path: Path
) -> None:
    """Acme's receiver stops answering with a dozen events on their way; Globex's events go out
    at once meanwhile, and Acme's receiver never holds more than its account's share (before,
    Acme took every slot until each POST timed out, and Globex waited for them)."""
    settings = {
        "callback_concurrency": 6,
        "callback_account_concurrency": 2,
        "callback_timeout": 30.0,  # longer than the test: the hang is never cut short
    }
    async with running_gateway(database_url, tmp_path / "data", **settings) as gateway:
        hanging, healthy = Receiver(hang=True), Receiver()
        with (
            receiving(hanging, free_port()) as hanging_url,
            receiving(healthy, free_port()) as healthy_url,
        ):
            hanging.secret = await set_callback(gateway, hanging_url)
            globex, healthy.secret = await _other_account(gateway, healthy_url)
            for phone in CUSTOMERS:
                await gateway.reply(phone, text="hello?")
            await eventually(lambda: hanging.in_flight == 2)
            started = time.monotonic()
            await _customers_write(gateway, globex, CUSTOMERS[:5], text="order status")
            # Well before any of Acme's POSTs could time out (30 s) and free a slot.
            await eventually(lambda: len(healthy.events()) == 5, timeout=10.0)
            took = time.monotonic() - started
            await asyncio.sleep(0.5)  # time for more of Acme's to be taken, were it allowed
            most = hanging.most_in_flight
            hanging.fail_with = 503
            hanging.hang = False  # let the held requests end before the server stops
        print(f"\nGlobex's 5 events delivered in {took:.2f} s; Acme's receiver held {most}")
        assert most == 2
        assert healthy.rejected == []


async def test_a_slow_receiver_is_sent_its_accounts_share_at_once(
    database_url: str, tmp_path: Path
) -> None:
    """A receiver that takes half a second to answer gets 64 callbacks at once (the default
    share), not a handful: one account's callbacks keep up with a campaign's statuses. (With 8
    at once, the retention benchmark's receiver on this machine fell behind 40 messages/s.)"""
    async with running_gateway(database_url, tmp_path / "data") as gateway:
        share = gateway.settings.callback_account_concurrency
        assert share == 64
        receiver = Receiver(answer_after=0.5)
        with receiving(receiver, free_port()) as url:
            receiver.secret = await set_callback(gateway, url)
            phones = [f"+1415555{8000 + n:04d}" for n in range(100)]
            await _customers_write(gateway, await gateway.sandbox_channel(), phones)
            await eventually(lambda: len(receiver.events()) == 100, timeout=20.0)
        assert receiver.most_in_flight == share
        assert receiver.rejected == []


async def _account_state(gateway: Harness) -> Any:
    async with gateway.engine.connect() as conn:
        return (await conn.execute(select(callback_accounts))).one()


async def test_a_receiver_that_is_down_is_probed_once_per_retry(
    database_url: str, tmp_path: Path
) -> None:
    """A dozen customers' events for a receiver answering 503: the account's share goes out
    before the first failure comes back, then each retry sends one event as a probe, not one
    per waiting event. When a probe gets through, everything due follows at once."""
    clock = ManualClock()
    async with running_gateway(
        database_url,
        tmp_path / "data",
        clock=clock,
        run_dispatcher=False,
        callback_account_concurrency=4,
    ) as gateway:
        sender = gateway.dispatcher.callbacks
        receiver = Receiver(fail_with=503, clock=lambda: clock.now().timestamp())
        with receiving(receiver, free_port()) as url:
            receiver.secret = await set_callback(gateway, url)
            for phone in CUSTOMERS:
                await gateway.reply(phone, text="hello?")
            await sender.drain()
            assert receiver.attempts == 4
            for retry in range(1, 6):
                state = await _account_state(gateway)
                assert state.failures == retry
                clock.advance(seconds=(state.due_at - clock.now()).total_seconds() + 1)
                before = receiver.attempts
                await sender.drain()
                assert receiver.attempts == before + 1, retry
            pending = await deliveries(gateway, status="pending")
            assert len(pending) == len(CUSTOMERS)
            assert sum(d["attempts"] for d in pending) == 4 + 5
            assert all(d["last_status_code"] in (None, 503) for d in pending)
            # Each shows when it can go next: with the account's next probe.
            due = (await _account_state(gateway)).due_at
            assert {d["next_attempt_at"] for d in pending} == {iso(due)}

            receiver.fail_with = None
            state = await _account_state(gateway)
            clock.advance(seconds=(state.due_at - clock.now()).total_seconds() + 1)
            await sender.drain()
            assert sorted(e["data"]["phone"] for e in receiver.events()) == sorted(CUSTOMERS)
            assert (await _account_state(gateway)).failures == 0
            assert await deliveries(gateway, status="pending") == []


async def test_a_receiver_refusing_one_event_holds_up_only_its_lane(
    database_url: str, tmp_path: Path
) -> None:
    """A 422 is about the event, not the receiver: that event's lane retries on its own clock
    (the customer's later message waits behind it, in order), while the account goes on."""
    quick = {"callback_retry_base": 0.2, "callback_retry_max": 0.4}
    async with running_gateway(database_url, tmp_path / "data", **quick) as gateway:
        receiver = Receiver(refuse_text="poison")
        with receiving(receiver, free_port()) as url:
            receiver.secret = await set_callback(gateway, url)
            await gateway.reply(CUSTOMERS[0], text="poison")
            await gateway.reply(CUSTOMERS[0], text="after")
            for phone in CUSTOMERS[1:6]:
                await gateway.reply(phone, text="fine")
            await eventually(lambda: len(receiver.events()) == 5)
            await eventually(lambda: receiver.attempts >= 5 + 3)  # the 422 retried meanwhile
            assert [e["data"]["text"] for e in receiver.events()] == ["fine"] * 5
            pending = await deliveries(gateway, status="pending")
            assert [d["event"]["data"]["text"] for d in pending] == ["after", "poison"]
            assert pending[1]["last_status_code"] == 422 and pending[0]["attempts"] == 0
            assert (await _account_state(gateway)).failures == 0
            # More for the account still go out at once.
            await gateway.reply(CUSTOMERS[7], text="fine")
            await eventually(lambda: len(receiver.events()) == 6)
            receiver.refuse_text = None
            await eventually(lambda: [e["data"]["text"] for e in receiver.events()][-2:]
                             == ["poison", "after"])  # fmt: skip


async def _failing_account_backlog(url: str, waiting: int) -> int:
    """Acme's receiver has failed and it has `waiting` events (each its own lane) backing off;
    Globex has 20 due. How much one claim of 8 reads (tests/support/query_work.py)."""
    migrate(url)
    engine = make_async_engine(url)
    now = SystemClock().now()
    try:
        async with write_tx(engine) as conn:
            channels = []
            for name, number in (("acme", "111"), ("globex", "222")):
                account = await account_store.create_account(conn, name=name, now=now)
                channel = await account_store.add_channel(
                    conn, account_id=account["id"], phone_number_id=number, waba_id="w",
                    access_token="t", app_secret="s", verify_token="v", graph_url="http://x",
                    mps=80, now=now,
                )  # fmt: skip
                channels.append(channel)
                await callback_log.set_callback(
                    conn, account_id=account["id"], url=f"https://{name}.example/events"
                )
            acme, globex = channels
            received = [
                (channel, InboundMessage(channel.phone_number_id, f"1415{n:07d}", f"w.{n}",
                                         now, "text", text="hi"))
                for channel, count in ((acme, waiting), (globex, 20))
                for n in range(count)
            ]  # fmt: skip
        for i in range(0, len(received), 1000):  # as webhooks would bring them, in batches
            async with write_tx(engine) as conn:
                await callback_store.enqueue_inbound_events(conn, received[i : i + 1000], now=now)
        lease = timedelta(seconds=60)
        claim_args: dict[str, Any] = {"lease": lease, "give_up_after": 90000.0}
        async with write_tx(engine) as conn:  # place every arrival in its lane
            while await callback_claims.has_due(conn, now=now):
                if not await conn.scalar(text("SELECT count(*) FROM callback_arrivals")):
                    break
                await callback_claims.claim(
                    conn, owner="w", now=now, limit=0, account_cap=8, in_flight={}, **claim_args
                )
        async with write_tx(engine) as conn:  # Acme's receiver answers 503 to its first event
            first = await callback_claims.claim(
                conn, owner="w", now=now, limit=1, account_cap=1,
                in_flight={globex.account_id: 1}, **claim_args,
            )  # fmt: skip
            [probe] = first.deliveries
            assert probe.account_id == acme.account_id
            await callback_claims.record_attempts(
                conn,
                owner="w",
                attempts=[Attempt(probe.seq, delivered=False, status_code=503, error="HTTP 503",
                                  retry_at=now, account_id=acme.account_id, started_at=now,
                                  receiver_down=True)],
                now=now,
                policy=RetryPolicy(),
                rng=random.Random(1),
            )  # fmt: skip
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:  # the statistics autovacuum would gather
                await conn.execute(text("ANALYZE"))
                await conn.commit()
        later = now + timedelta(seconds=1)
        async with engine.connect() as conn:
            await conn.begin()
            claimed, work = await work_of(
                conn,
                lambda: callback_claims.claim(
                    conn, owner="w", now=later, limit=8, account_cap=8, in_flight={}, **claim_args
                ),
            )
            await conn.rollback()
        assert [d.account_id for d in claimed.deliveries] == [globex.account_id] * 8
        return work
    finally:
        await engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_a_claim_reads_the_same_however_many_events_a_failing_receiver_has_waiting(
    kind: str, tmp_path: Path
) -> None:
    """While Acme's receiver is down, a claim passes over its account, not over each of its
    waiting events: 20,000 of them cost it what 200 do (before, every claim stepped over every
    due event blocked behind a lane's head, and every head was tried at its own retry)."""
    work = await work_by_size(kind, tmp_path, _failing_account_backlog)
    print(f"\ncallback claim of 8, work by events waiting for a failing receiver: {work}")
    assert work[20_000] <= work[200] * 1.2, work


async def _delivered_heads_work(url: str, waiting: int) -> int:
    """Acme has `waiting` events pending, each in its own lane (a receiver slower than the
    traffic); 8 of them are claimed and delivered. How much recording those 8 reads: their lanes
    have nothing left and go (tests/support/query_work.py)."""
    migrate(url)
    engine = make_async_engine(url)
    now = SystemClock().now()
    claim_args: dict[str, Any] = {"lease": timedelta(seconds=60), "give_up_after": 90000.0}
    try:
        account, channel = await acme(engine, now)
        async with write_tx(engine) as conn:
            await callback_log.set_callback(
                conn, account_id=account["id"], url="https://acme.example/events"
            )
        received = [
            (channel, InboundMessage("111", f"1415{n:07d}", f"w.{n}", now, "text", text="hi"))
            for n in range(waiting)
        ]
        for i in range(0, len(received), 1000):
            async with write_tx(engine) as conn:
                await callback_store.enqueue_inbound_events(conn, received[i : i + 1000], now=now)
        async with write_tx(engine) as conn:  # every event takes its lane
            while await conn.scalar(text("SELECT count(*) FROM callback_arrivals")):
                await callback_claims.claim(
                    conn, owner="w", now=now, limit=0, account_cap=8, in_flight={}, **claim_args
                )
        async with write_tx(engine) as conn:
            claimed = await callback_claims.claim(
                conn, owner="w", now=now, limit=8, account_cap=8, in_flight={}, **claim_args
            )
        assert len(claimed.deliveries) == 8
        delivered = [
            Attempt(d.seq, delivered=True, status_code=200, account_id=d.account_id,
                    started_at=now)
            for d in claimed.deliveries
        ]  # fmt: skip
        rng = random.Random(1)
        _, work, lanes = await work_undone(
            engine,
            lambda conn: callback_claims.record_attempts(
                conn, owner="w", attempts=delivered, now=now, policy=RetryPolicy(), rng=rng
            ),
            lambda conn: conn.scalar(text("SELECT count(*) FROM callback_lanes")),
        )
        assert lanes == waiting - 8  # the delivered heads' lanes went; the others stay
        return work
    finally:
        await engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_a_delivery_moves_its_lane_on_reading_the_same_however_many_events_wait(
    kind: str, tmp_path: Path
) -> None:
    """Recording delivered events costs what they are, not what waits behind other lanes: with
    20,000 events pending it reads what it reads with 200. (Before, SQLite learnt that a lane had
    nothing left by reading every pending event: a receiver slower than the traffic made each
    delivery dearer, and the sender fell further behind.)"""
    work = await work_by_size(kind, tmp_path, _delivered_heads_work)
    print(f"\nrecording 8 delivered callbacks, work by events waiting: {work}")
    assert work[20_000] <= work[200] * 1.2, work


async def test_a_lane_whose_head_retention_removed_goes_on_with_the_rest(
    database_url: str, tmp_path: Path
) -> None:
    """Retention deletes events by age, a pending one too (a receiver down for a month): the
    lane it headed goes on with its next event instead of waiting for one that is gone."""
    async with running_gateway(database_url, tmp_path / "data", run_dispatcher=False) as gateway:
        sender = gateway.dispatcher.callbacks
        receiver = Receiver()
        with receiving(receiver, free_port()) as url:
            receiver.secret = await set_callback(gateway, url)
            for text_ in ("one", "two", "three"):
                await gateway.reply(CUSTOMERS[0], text=text_)
            async with write_tx(gateway.engine) as conn:  # the events take their lane
                await callback_claims.claim(
                    conn, owner="w", now=gateway.clock.now(), lease=timedelta(seconds=60),
                    limit=0, account_cap=8, in_flight={}, give_up_after=90000.0,
                )  # fmt: skip
                await conn.execute(
                    text(
                        "DELETE FROM callback_deliveries WHERE seq ="
                        " (SELECT MIN(seq) FROM callback_deliveries)"
                    )
                )
            await sender.drain()
            assert [e["data"]["text"] for e in receiver.events()] == ["two", "three"]
