"""The outbox's claim: only each lane's head, never a leased one, oldest first, any number of
business numbers and recipients."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.support.databases import fresh_database
from tests.support.query_work import work_undone
from wagate.clock import SystemClock
from wagate.domain.messages import parse_send_request
from wagate.domain.models import InboundMessage, Status
from wagate.store import accounts as account_store
from wagate.store.accept_rows import CoreRows
from wagate.store.accepts import AcceptRequest, accept_batch
from wagate.store.db import make_async_engine, migrate, write_tx
from wagate.store.outbox import Sent, claim, record_outcomes
from wagate.store.statuses import Report, apply_reports, record_inbound
from wagate.store.tables import messages, pending_statuses

PHONES = ["+14155552671", "+919876543210", "+447911123456"]


async def test_claims_take_lane_heads_only(database_url: str, tmp_path: Path) -> None:
    migrate(database_url)
    engine = make_async_engine(database_url)
    now = SystemClock().now()
    try:
        async with write_tx(engine) as conn:
            account = await account_store.create_account(conn, name="a", now=now)
            channels = [
                await account_store.add_channel(
                    conn,
                    account_id=account["id"],
                    phone_number_id=str(n),
                    waba_id="w",
                    access_token="t",
                    app_secret="s",
                    verify_token="v",
                    graph_url="http://x",
                    mps=80,
                    now=now,
                )
                for n in (1, 2)
            ]
            token, _ = await account_store.create_token(
                conn, account_id=account["id"], name="t", now=now
            )
            for channel in channels:
                for phone in PHONES:
                    inbound = InboundMessage(
                        channel.phone_number_id, phone[1:], f"w.{channel.id}{phone}", now, "text"
                    )
                    await record_inbound(conn, channel=channel, message=inbound, now=now)
            items = [
                AcceptRequest(
                    token,
                    parse_send_request(
                        {"phone": phone, "message": f"{n}", "channel": channel.phone_number_id}
                    ),
                )
                for n in range(3)
                for channel in channels
                for phone in PHONES
            ]
            accepted = await accept_batch(conn, items, now=now)
        ids = [a["id"] for a in accepted if isinstance(a, dict)]
        assert len(ids) == 18
        lease = timedelta(seconds=30)
        async with write_tx(engine) as conn:
            first = await claim(conn, owner="a", now=now, lease=lease, limit=100)
        # Six lanes (2 numbers x 3 customers): their first messages, nothing else.
        assert sorted(c.message_id for c in first) == sorted(ids[:6])
        async with write_tx(engine) as conn:
            assert await claim(conn, owner="b", now=now, lease=lease, limit=100) == []
        # When the leases run out, the same heads come back (nothing behind them jumps ahead).
        async with write_tx(engine) as conn:
            again = await claim(conn, owner="b", now=now + lease * 2, lease=lease, limit=4)
        assert [c.message_id for c in again] == sorted(ids[:6])[:4]
        assert all(c.attempts == 2 for c in again)
    finally:
        await engine.dispose()


async def _one_queued_message(engine: AsyncEngine, now: datetime) -> str:
    """An account with one channel, a customer whose window is open, and one message to them."""
    async with write_tx(engine) as conn:
        account = await account_store.create_account(conn, name="a", now=now)
        channel = await account_store.add_channel(
            conn, account_id=account["id"], phone_number_id="1", waba_id="w",
            access_token="t", app_secret="s", verify_token="v", graph_url="http://x",
            mps=80, now=now,
        )  # fmt: skip
        token, _ = await account_store.create_token(
            conn, account_id=account["id"], name="t", now=now
        )
        inbound = InboundMessage("1", PHONES[0][1:], "w.1", now, "text")
        await record_inbound(conn, channel=channel, message=inbound, now=now)
        request = parse_send_request({"phone": PHONES[0], "message": "due now"})
        [accepted] = await accept_batch(conn, [AcceptRequest(token, request)], now=now)
    assert isinstance(accepted, dict)
    return str(accepted["id"])


async def test_a_message_due_at_a_whole_second_is_claimed_at_that_second(
    database_url: str, tmp_path: Path
) -> None:
    """Times are compared as stored: on SQLite a whole-second time once compared as later than
    itself, so a message due exactly now waited for the next poll (and a test clock that moves
    in whole seconds never got it)."""
    migrate(database_url)
    engine = make_async_engine(database_url)
    now = SystemClock().now().replace(microsecond=0)
    try:
        message_id = await _one_queued_message(engine, now)
        lease = timedelta(seconds=30)
        async with write_tx(engine) as conn:
            [claimed] = await claim(conn, owner="a", now=now, lease=lease, limit=10)
        assert claimed.message_id == message_id
        async with write_tx(engine) as conn:  # the lease holds up to its last instant
            assert await claim(conn, owner="b", now=now + lease, lease=lease, limit=10) == []
        async with write_tx(engine) as conn:
            later = now + lease + timedelta(seconds=1)
            [again] = await claim(conn, owner="b", now=later, lease=lease, limit=10)
        assert again.attempts == 2
    finally:
        await engine.dispose()


async def test_a_status_report_racing_the_sends_own_commit_is_applied(
    database_url: str, tmp_path: Path
) -> None:
    """Meta's "sent" webhook can arrive while the transaction recording the send's wamid is
    still open. It must neither be lost in between (parked after the send's transaction looked
    for parked reports) nor applied twice: the message ends up `sent`, nothing stays parked."""
    migrate(database_url)
    engine = make_async_engine(database_url)
    now = SystemClock().now()
    try:
        message_id = await _one_queued_message(engine, now)
        async with write_tx(engine) as conn:
            await claim(conn, owner="a", now=now, lease=timedelta(seconds=30), limit=10)

        async with engine.connect() as conn:
            channel_id = (
                await conn.execute(select(messages.c.channel_id).where(messages.c.id == message_id))
            ).scalar_one()

        async def webhook() -> None:
            report = Report(channel_id, "wamid.race", Status.SENT, now)
            async with write_tx(engine) as conn:
                await apply_reports(conn, [report], now=now)

        async with write_tx(engine) as conn:
            await record_outcomes(
                conn, owner="a", outcomes=[Sent(message_id, "wamid.race")], now=now
            )
            racing = asyncio.create_task(webhook())
            await asyncio.sleep(0.3)  # the webhook's transaction runs while ours is open
        await asyncio.wait_for(racing, timeout=10)
        async with engine.connect() as conn:
            status = (
                await conn.execute(select(messages.c.status).where(messages.c.id == message_id))
            ).scalar_one()
            parked = (
                await conn.execute(select(func.count()).select_from(pending_statuses))
            ).scalar_one()
        assert (status, parked) == ("sent", 0)
    finally:
        await engine.dispose()


async def _queue_backlog(
    engine: AsyncEngine, *, recipients: int, per_recipient: int, now: datetime
) -> None:
    """`recipients` customers with `per_recipient` messages each queued, as the accept path
    stores them (their messages, `queued` events, outbox rows and lanes: `CoreRows.store`)."""
    async with write_tx(engine) as conn:
        account = await account_store.create_account(conn, name="a", now=now)
        channel = await account_store.add_channel(
            conn, account_id=account["id"], phone_number_id="1", waba_id="w",
            access_token="t", app_secret="s", verify_token="v", graph_url="http://x",
            mps=80, now=now,
        )  # fmt: skip
        rows = [
            {
                "id": f"msg_{n:06d}{lane:08d}",
                "account_id": account["id"],
                "channel_id": channel.id,
                "phone": f"+1415{lane:07d}",
                "type": "text",
                "content": {"type": "text", "body": "hi", "preview_url": False},
                "reply_to": None,
                "metadata": {},
                "status": "queued",
                "wamid": None,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(per_recipient)
            for lane in range(recipients)
        ]
        for i in range(0, len(rows), 5000):
            await CoreRows(conn).store(rows[i : i + 5000], now=now)


async def _claim_work(database_url: str, *, recipients: int, per_recipient: int) -> int:
    """How much one claim of 64 reads with this backlog (tests/support/query_work.py)."""
    migrate(database_url)
    engine = make_async_engine(database_url)
    now = SystemClock().now()
    try:
        await _queue_backlog(engine, recipients=recipients, per_recipient=per_recipient, now=now)
        claimed, work, _ = await work_undone(
            engine,
            lambda conn: claim(conn, owner="w", now=now, lease=timedelta(seconds=30), limit=64),
        )
        assert len(claimed) == 64
        return work
    finally:
        await engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_a_claim_reads_the_same_however_many_recipients_wait(
    kind: str, tmp_path: Path
) -> None:
    """A claim takes the next lanes from a table of lane heads, so with 30,000 recipients
    waiting it reads what it reads with 1,000 (before, it walked every waiting recipient's lane:
    a drain of 100,000 ran at 368/s instead of 843/s at 20,000). Nor do messages queued behind
    the heads cost anything."""
    work = {}
    for name, recipients, per_recipient in [
        ("few", 1_000, 1),
        ("many", 30_000, 1),
        ("deep", 1_000, 20),
    ]:
        with fresh_database(kind, tmp_path / name) as url:
            work[name] = await _claim_work(url, recipients=recipients, per_recipient=per_recipient)
    print(f"\nclaim of 64, work by backlog: {work}")
    assert work["many"] <= work["few"] * 1.2, work
    assert work["deep"] <= work["few"] * 1.2, work
    if kind == "postgresql":
        # Rows and index entries read follow the batch: a few per message claimed.
        assert work["many"] <= 16 * 64, work


@pytest.mark.postgres
async def test_accepts_racing_workers_on_the_same_lanes_lose_nothing(tmp_path: Path) -> None:
    """PostgreSQL, several connections at once: three accepters keep adding messages to five
    customers' lanes while two workers claim heads and record them sent. A message accepted
    into a lane just as its head leaves must become the next head, not be stranded: at the end
    everything was sent once, no lane ever had two messages in flight, and nothing is left."""
    with fresh_database("postgresql", tmp_path) as url:
        migrate(url)
        engines = [make_async_engine(url) for _ in range(5)]
        now = SystemClock().now()
        customers = [*PHONES, "+12025550143", "+13105550188"]
        try:
            async with write_tx(engines[0]) as conn:
                account = await account_store.create_account(conn, name="a", now=now)
                channel = await account_store.add_channel(
                    conn, account_id=account["id"], phone_number_id="1", waba_id="w",
                    access_token="t", app_secret="s", verify_token="v", graph_url="http://x",
                    mps=80, now=now,
                )  # fmt: skip
                token, _ = await account_store.create_token(
                    conn, account_id=account["id"], name="t", now=now
                )
                for phone in customers:
                    inbound = InboundMessage("1", phone[1:], f"w{phone}", now, "text")
                    await record_inbound(conn, channel=channel, message=inbound, now=now)
            accepted: list[str] = []
            in_flight: dict[str, str] = {}  # customer -> message being sent
            sent: list[str] = []
            accepting = True

            async def accepter(engine: AsyncEngine, n: int) -> None:
                for i in range(60):
                    request = parse_send_request(
                        {"phone": customers[(n + i) % len(customers)], "message": f"{n}-{i}"}
                    )
                    async with write_tx(engine) as conn:
                        [outcome] = await accept_batch(
                            conn, [AcceptRequest(token, request)], now=SystemClock().now()
                        )
                        # A commit that takes a moment (a busy server): the widest window for
                        # a head to leave while this message is not yet visible.
                        await asyncio.sleep(0.003 + 0.002 * (i % 4))
                    assert isinstance(outcome, dict)
                    accepted.append(outcome["id"])
                    await asyncio.sleep(0.004 + 0.002 * (n % 3))

            async def worker(engine: AsyncEngine, owner: str) -> None:
                lease = timedelta(seconds=60)
                idle_since = None
                while True:
                    async with write_tx(engine) as conn:
                        claims = await claim(
                            conn, owner=owner, now=SystemClock().now(), lease=lease, limit=3
                        )
                    for c in claims:
                        assert c.phone not in in_flight, (c.phone, in_flight)
                        in_flight[c.phone] = c.message_id
                    await asyncio.sleep(0.001)  # "sending"
                    if claims:
                        async with write_tx(engine) as conn:
                            recorded, _ = await record_outcomes(
                                conn,
                                owner=owner,
                                outcomes=[Sent(c.message_id, f"wamid.{c.message_id}")
                                          for c in claims],
                                now=SystemClock().now(),
                            )  # fmt: skip
                        assert recorded == {c.message_id for c in claims}
                        for c in claims:
                            del in_flight[c.phone]
                            sent.append(c.message_id)
                    elif not accepting and len(sent) == len(accepted):
                        return
                    elif not accepting:
                        # Nothing claimable, yet not everything sent: messages without a lane.
                        idle_since = idle_since or asyncio.get_running_loop().time()
                        stuck = asyncio.get_running_loop().time() - idle_since
                        assert stuck < 3, f"{len(accepted) - len(sent)} messages stranded"
                        await asyncio.sleep(0.05)
                    if claims:
                        idle_since = None

            async def accept_all() -> None:
                nonlocal accepting
                await asyncio.gather(*(accepter(engines[n], n) for n in range(3)))
                accepting = False

            await asyncio.wait_for(
                asyncio.gather(accept_all(), worker(engines[3], "w1"), worker(engines[4], "w2")),
                timeout=60,
            )
            assert sorted(sent) == sorted(accepted) and len(set(sent)) == len(sent) == 180
            async with engines[0].connect() as conn:
                left = await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM outbox_lanes)"
                    )
                )
                assert tuple(left.one()) == (0, 0)
        finally:
            for engine in engines:
                await engine.dispose()


@pytest.mark.postgres
async def test_a_message_accepted_as_its_lanes_head_leaves_becomes_the_next_head(
    tmp_path: Path,
) -> None:
    """PostgreSQL, the interleaving that could strand a message, forced: a customer's message is
    accepted (not yet committed) while the worker records the lane's head sent. The worker must
    wait for the accept and then hand the lane to the new message; done the other way round, it
    would see an empty lane, remove it, and the new message would never be claimed."""
    with fresh_database("postgresql", tmp_path) as url:
        migrate(url)
        accepting, working = make_async_engine(url), make_async_engine(url)
        now = SystemClock().now()
        try:
            head = await _one_queued_message(working, now)
            async with write_tx(working) as conn:
                [claimed] = await claim(
                    conn, owner="w", now=now, lease=timedelta(seconds=30), limit=10
                )
                token, _ = await account_store.create_token(
                    conn, account_id=(await _account_of(conn, head)), name="t2", now=now
                )
            assert claimed.message_id == head
            conn = await accepting.connect()
            await conn.begin()
            request = parse_send_request({"phone": PHONES[0], "message": "next"})
            [accepted] = await accept_batch(conn, [AcceptRequest(token, request)], now=now)
            assert isinstance(accepted, dict)

            async def record_head_sent() -> None:
                async with write_tx(working) as other:
                    await record_outcomes(
                        other, owner="w", outcomes=[Sent(head, "wamid.head")], now=now
                    )

            recording = asyncio.create_task(record_head_sent())
            await asyncio.sleep(0.3)
            assert not recording.done()  # it waits for the accept's lane lock
            await conn.commit()
            await conn.close()
            await asyncio.wait_for(recording, timeout=10)
            async with write_tx(working) as other:
                [following] = await claim(
                    other, owner="w", now=now, lease=timedelta(seconds=30), limit=10
                )
            assert following.message_id == accepted["id"]
        finally:
            await accepting.dispose()
            await working.dispose()


async def _account_of(conn: AsyncConnection, message_id: str) -> str:
    result = await conn.execute(select(messages.c.account_id).where(messages.c.id == message_id))
    account_id: str = result.scalar_one()
    return account_id
