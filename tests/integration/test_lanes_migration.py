"""Migration 0004 builds the lane tables from what is queued: a database upgraded with messages
and callback events waiting sends exactly what it would have sent before, in the same order."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import select, text

from wagate.clock import SystemClock
from wagate.store import callback_claims
from wagate.store.db import _alembic_config, make_async_engine, make_sync_engine, migrate, write_tx
from wagate.store.outbox import claim
from wagate.store.tables import callback_accounts, callback_lanes, outbox_lanes

T0 = "2026-12-01 10:00:00.000000"
LEASED_UNTIL = "2026-12-01 10:05:00.000000"


def _queue_before_0004(url: str) -> None:
    """Rows as a 0002 database holds them: two lanes of messages (one of them leased by a
    worker that died), and callback events in two lanes, one already delivered."""
    engine = make_sync_engine(url)
    try:
        command.upgrade(_alembic_config(engine), "0002")
        with engine.begin() as db:
            db.execute(
                text(
                    "INSERT INTO accounts (id, name, api_rate, created_at, callback_url,"
                    " callback_secret) VALUES ('acc_1', 'a', 0, :t, 'https://x.example/', 's')"
                ),
                {"t": T0},
            )
            db.execute(
                text(
                    "INSERT INTO channels (id, account_id, phone_number_id, waba_id,"
                    " access_token, app_secret, verify_token, graph_url, mps, is_default,"
                    " is_sandbox, created_at) VALUES ('ch_1', 'acc_1', '1', 'w', 't', 's', 'v',"
                    " 'http://x', 80, true, false, :t)"
                ),
                {"t": T0},
            )
            for n, phone in enumerate(["+14155550001"] * 3 + ["+14155550002"] * 2):
                db.execute(
                    text(
                        "INSERT INTO messages (id, account_id, channel_id, phone, type, content,"
                        " metadata, status, attempts, created_at, updated_at) VALUES (:id,"
                        " 'acc_1', 'ch_1', :phone, 'text', :content, '{}', 'queued', 0, :t, :t)"
                    ),
                    {
                        "id": f"msg_{n}",
                        "phone": phone,
                        "t": T0,
                        "content": '{"type": "text", "body": "hi", "preview_url": false}',
                    },
                )
                leased = n == 3  # the second lane's head, leased by a worker that died
                db.execute(
                    text(
                        "INSERT INTO outbox (message_id, channel_id, phone, available_at,"
                        " lease_until, lease_owner, attempts)"
                        " VALUES (:id, 'ch_1', :phone, :t, :lease, :owner, :attempts)"
                    ),
                    {
                        "id": f"msg_{n}",
                        "phone": phone,
                        "t": T0,
                        "lease": LEASED_UNTIL if leased else None,
                        "owner": "dead-worker" if leased else None,
                        "attempts": 1 if leased else 0,
                    },
                )
            for seq, lane, status in [
                (1, "msg_0", "delivered"),
                (2, "msg_0", "pending"),
                (3, "msg_0", "pending"),
                (4, "in:ch_1:+14155550002", "pending"),
            ]:
                db.execute(
                    text(
                        "INSERT INTO callback_deliveries (seq, id, account_id, type, lane,"
                        " message_id, payload, status, attempts, available_at, created_at)"
                        " VALUES (:seq, :id, 'acc_1', 'message.status', :lane, NULL, '{}',"
                        " :status, 0, :t, :t)"
                    ),
                    {"seq": seq, "id": f"evt_{seq}", "lane": lane, "status": status, "t": T0},
                )
    finally:
        engine.dispose()


async def test_upgrading_keeps_what_is_queued_claimable_in_order(
    database_url: str, tmp_path: Path
) -> None:
    sync_url = database_url.replace("+aiosqlite", "").replace("+psycopg", "")
    _queue_before_0004(sync_url)
    migrate(database_url)
    engine = make_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            lanes = {
                (r.phone, r.head_id): r.due_at for r in await conn.execute(select(outbox_lanes))
            }
            events = [(r.lane, r.head_seq) for r in await conn.execute(select(callback_lanes))]
            [account] = list(await conn.execute(select(callback_accounts)))
        # Each lane's oldest message is its head; the leased one is due when its lease ends.
        assert sorted(lanes) == [("+14155550001", "msg_0"), ("+14155550002", "msg_3")]
        first, second = (lanes[k] for k in sorted(lanes))
        assert second - first == timedelta(minutes=5)
        assert sorted(events) == [("in:ch_1:+14155550002", 4), ("msg_0", 2)]
        assert account.account_id == "acc_1" and account.failures == 0
        assert account.due_at == first

        now = SystemClock().now()
        async with write_tx(engine) as conn:
            claimed = await claim(conn, owner="w", now=now, lease=timedelta(seconds=30), limit=10)
        assert [(c.message_id, c.attempts) for c in claimed] == [("msg_0", 1), ("msg_3", 2)]
        async with write_tx(engine) as conn:
            taken = await callback_claims.claim(
                conn, owner="w", now=now, lease=timedelta(seconds=30), limit=10,
                account_cap=8, in_flight={}, give_up_after=10**9,
            )  # fmt: skip
        assert sorted(d.seq for d in taken.deliveries) == [2, 4]
    finally:
        await engine.dispose()
