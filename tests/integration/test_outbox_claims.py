"""The outbox's claim: only each lane's head, never a leased one, oldest first, any number of
business numbers and recipients."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.clock import SystemClock
from wagate.domain.messages import parse_send_request
from wagate.domain.models import InboundMessage, Status
from wagate.store import accounts as account_store
from wagate.store.accepts import AcceptRequest, accept_batch
from wagate.store.db import make_async_engine, migrate, write_tx
from wagate.store.outbox import _CLAIM_SQL, Sent, claim, record_outcomes
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


def _claim_steps(database: Path, queued_per_lane: int, lanes: int) -> int:
    """SQLite virtual-machine steps (in hundreds) of one claim with `queued_per_lane` messages
    queued for each of `lanes` recipients: a count, the same on any machine, not a time."""
    db = sqlite3.connect(database, isolation_level=None)
    try:
        db.execute("DELETE FROM outbox")
        db.executemany(
            "INSERT INTO outbox (message_id, channel_id, phone, available_at, attempts)"
            " VALUES (?, 'ch_1', ?, '2026-01-01 00:00:00.000000', 0)",
            [
                (f"msg_{n:08d}", f"+1415555{lane:04d}")
                for lane in range(lanes)
                for n in range(lane * 100_000, lane * 100_000 + queued_per_lane)
            ],
        )
        steps = 0

        def step() -> int:
            nonlocal steps
            steps += 1
            return 0

        db.execute("BEGIN")
        db.set_progress_handler(step, 100)
        claimed = db.execute(
            _CLAIM_SQL["sqlite"],
            {
                "now": "2026-01-01 00:00:01.000000",
                "lease_until": "2026-01-01 00:05:00.000000",
                "owner": "w",
                "limit": 64,
            },
        ).fetchall()
        db.set_progress_handler(None, 100)
        db.execute("ROLLBACK")
        assert len(claimed) == 64
        return steps
    finally:
        db.close()


def test_a_claim_costs_the_same_however_deep_the_backlog(tmp_path: Path) -> None:
    """A claim looks only at each recipient's oldest message, so with 200 recipients it does
    the same work whether each has 5 or 300 messages queued. (Its first step used to read every
    message queued for the first business number: 19 times the work at 60,000 queued, and a
    claim took 15 ms instead of 1.6.)"""
    migrate(f"sqlite:///{tmp_path / 'w.db'}")
    shallow = _claim_steps(tmp_path / "w.db", queued_per_lane=5, lanes=200)
    deep = _claim_steps(tmp_path / "w.db", queued_per_lane=300, lanes=200)
    assert deep < shallow * 1.3, (shallow, deep)
