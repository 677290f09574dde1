"""The callbacks outbox: events for the business, queued in the transaction that caused them and
claimed by lane under a lease. (The rows stay as the delivery log: see `callback_log`.)

A lane is one message's status events, or one customer's inbound messages on one number; only
a lane's oldest pending event may be claimed, so a lane's events reach the business in order,
one at a time, while different lanes go in parallel. A claim is a lease: if the sender dies,
the event is claimable again when the lease ends (delivery is at-least-once; the event `id`
lets receivers drop a repeat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.domain.callbacks import (
    INBOUND_EVENT,
    STATUS_EVENT,
    inbound_event,
    inbound_lane,
    status_event,
)
from wagate.domain.models import InboundMessage
from wagate.ids import new_id
from wagate.store.tables import UTCDateTime, accounts, callback_deliveries, messages

if TYPE_CHECKING:
    from wagate.store.accounts import Channel
    from wagate.store.statuses import StatusChange

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
_CHUNK = 500
# Namespace of the PostgreSQL advisory locks that order concurrent inserts into one lane.
_LANE_LOCK_SPACE = 0x77616763

# The same claim on both dialects; PostgreSQL adds SKIP LOCKED so that concurrent senders pass
# over each other's rows. SQLite runs it inside BEGIN IMMEDIATE (see db.py), which already
# serialises writers. A row is a lane head when no older event of its lane is still pending.
_CLAIM_HEADS = """
SELECT d.seq FROM callback_deliveries d
WHERE d.status = 'pending'
  AND d.available_at <= :now
  AND (d.lease_until IS NULL OR d.lease_until < :now)
  AND NOT EXISTS (
      SELECT 1 FROM callback_deliveries e
      WHERE e.lane = d.lane AND e.seq < d.seq AND e.status = 'pending')
ORDER BY d.available_at, d.seq
LIMIT :limit
"""

CLAIM_SQL = {
    "sqlite": f"""
UPDATE callback_deliveries
SET lease_until = :lease_until, lease_owner = :owner, attempts = attempts + 1
WHERE seq IN ({_CLAIM_HEADS})
RETURNING seq
""",
    "postgresql": f"""
UPDATE callback_deliveries
SET lease_until = :lease_until, lease_owner = :owner, attempts = attempts + 1
WHERE seq IN ({_CLAIM_HEADS} FOR UPDATE OF d SKIP LOCKED)
RETURNING seq
""",
}
# Times bound through the column type, so that they compare with stored values exactly as stored
# (SQLite compares text, and its driver would drop zero microseconds). Built once, like the
# outbox's claim: the sender claims every quarter second.
_CLAIM = {
    dialect: text(sql).bindparams(
        bindparam("now", type_=UTCDateTime()), bindparam("lease_until", type_=UTCDateTime())
    )
    for dialect, sql in CLAIM_SQL.items()
}
_CLAIMED = (
    select(
        callback_deliveries.c.seq,
        callback_deliveries.c.id,
        callback_deliveries.c.account_id,
        callback_deliveries.c.type,
        callback_deliveries.c.payload,
        callback_deliveries.c.attempts,
        callback_deliveries.c.created_at,
        accounts.c.callback_url,
        accounts.c.callback_secret,
    )
    .join(accounts, accounts.c.id == callback_deliveries.c.account_id)
    .where(callback_deliveries.c.seq.in_(bindparam("seqs", expanding=True)))
    .order_by(callback_deliveries.c.seq)
)


# --------------------------------------------------------------------------- queueing events


# Built once: it runs for every batch of status changes.
_CALLED_BACK = (
    select(
        messages.c.id,
        messages.c.account_id,
        messages.c.phone,
        messages.c.wamid,
        messages.c.metadata,
    )
    .join(accounts, accounts.c.id == messages.c.account_id)
    .where(
        messages.c.id.in_(bindparam("ids", expanding=True)), accounts.c.callback_url.is_not(None)
    )
)


async def enqueue_status_events(
    conn: AsyncConnection, changes: Sequence[StatusChange], *, now: datetime
) -> int:
    """Queue a `message.status` event per change, in the order given (each message's changes
    in lifecycle order), for accounts that have a callback URL. Returns how many."""
    if not changes:
        return 0
    ids = list(dict.fromkeys(c.message_id for c in changes))
    found: dict[str, Any] = {}
    for i in range(0, len(ids), _CHUNK):
        rows = await conn.execute(_CALLED_BACK, {"ids": ids[i : i + _CHUNK]})
        found.update({r.id: r for r in rows})
    events = []
    for change in changes:
        message = found.get(change.message_id)
        if message is None:
            continue
        event_id = new_id("evt")
        events.append(
            _row(
                event_id,
                message.account_id,
                STATUS_EVENT,
                lane=change.message_id,
                message_id=change.message_id,
                now=now,
                payload=status_event(
                    event_id=event_id,
                    created_at=now,
                    message_id=change.message_id,
                    phone=message.phone,
                    status=change.status,
                    occurred_at=change.occurred_at,
                    wamid=message.wamid,
                    error=change.error,
                    metadata=message.metadata or {},
                ),
            )
        )
    await _insert(conn, events)
    return len(events)


async def enqueue_inbound_events(
    conn: AsyncConnection, received: Sequence[tuple[Channel, InboundMessage]], *, now: datetime
) -> int:
    """Queue a `message.inbound` event per new customer message, for accounts that have a
    callback URL. Returns how many."""
    if not received:
        return 0
    account_ids = list({channel.account_id for channel, _ in received})
    rows = await conn.execute(
        select(accounts.c.id).where(
            accounts.c.id.in_(account_ids), accounts.c.callback_url.is_not(None)
        )
    )
    listening = {r.id for r in rows}
    wanted = [(c, m) for c, m in received if c.account_id in listening]
    if not wanted:
        return 0
    # The customer quoted (or tapped a button of) one of our messages: name it by our id.
    quoted = list({m.context_wamid for _, m in wanted if m.context_wamid})
    ours: dict[str, tuple[str, str]] = {}
    for i in range(0, len(quoted), _CHUNK):
        found = await conn.execute(
            select(messages.c.id, messages.c.wamid, messages.c.account_id).where(
                messages.c.wamid.in_(quoted[i : i + _CHUNK])
            )
        )
        ours.update({r.wamid: (r.id, r.account_id) for r in found})
    # A customer's messages go in the order they sent them (Meta may batch them out of order).
    wanted.sort(key=lambda cm: cm[1].timestamp)
    lanes = sorted({inbound_lane(c.id, m.phone) for c, m in wanted})
    if conn.dialect.name == "postgresql":
        # Two webhooks for one customer in concurrent transactions: the second waits, so its
        # events get later sequence numbers that no claim can see before the first's.
        for lane in lanes:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(CAST(:space AS integer), hashtext(:lane))"),
                {"space": _LANE_LOCK_SPACE, "lane": lane},
            )
    events = []
    for channel, message in wanted:
        reply_to = None
        if message.context_wamid in ours:
            message_id, account_id = ours[message.context_wamid]
            reply_to = message_id if account_id == channel.account_id else None
        event_id = new_id("evt")
        events.append(
            _row(
                event_id,
                channel.account_id,
                INBOUND_EVENT,
                lane=inbound_lane(channel.id, message.phone),
                message_id=None,
                now=now,
                payload=inbound_event(
                    event_id=event_id,
                    created_at=now,
                    channel_id=channel.id,
                    message=message,
                    reply_to=reply_to,
                ),
            )
        )
    await _insert(conn, events)
    return len(events)


def _row(
    event_id: str,
    account_id: str,
    type: str,
    *,
    lane: str,
    message_id: str | None,
    now: datetime,
    payload: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": event_id,
        "account_id": account_id,
        "type": type,
        "lane": lane,
        "message_id": message_id,
        "payload": payload,
        "status": PENDING,
        "attempts": 0,
        "available_at": now,
        "created_at": now,
    }


async def _insert(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    # An executemany runs the rows in order, so `seq` follows the order of the lane's events.
    if rows:
        await conn.execute(callback_deliveries.insert(), rows)


# --------------------------------------------------------------------------- the sender's side


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed event, with where to send it and the key to sign it with (as of the claim)."""

    seq: int
    id: str
    account_id: str
    type: str
    payload: dict[str, Any]
    attempts: int  # including this one
    created_at: datetime
    url: str | None
    secret: str | None


async def has_due(conn: AsyncConnection, *, now: datetime) -> bool:
    """A cheap read: is any event waiting to be sent? (Idle senders ask this, not `claim`.)"""
    result = await conn.execute(
        select(callback_deliveries.c.seq)
        .where(
            callback_deliveries.c.status == PENDING,
            callback_deliveries.c.available_at <= now,
        )
        .limit(1)
    )
    return result.first() is not None


async def claim(
    conn: AsyncConnection, *, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[DueDelivery]:
    """Lease up to `limit` lane heads that are due."""
    result = await conn.execute(
        _CLAIM[conn.dialect.name],
        {"now": now, "lease_until": now + lease, "owner": owner, "limit": limit},
    )
    seqs = [r.seq for r in result]
    if not seqs:
        return []
    rows = await conn.execute(_CLAIMED, {"seqs": seqs})
    return [
        DueDelivery(
            seq=r.seq,
            id=r.id,
            account_id=r.account_id,
            type=r.type,
            payload=r.payload,
            attempts=r.attempts,
            created_at=r.created_at,
            url=r.callback_url,
            secret=r.callback_secret,
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Attempt:
    """What came of sending one claimed event. Not delivered and no `retry_at`: given up."""

    seq: int
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    retry_at: datetime | None = None


async def record_attempts(
    conn: AsyncConnection, *, owner: str, attempts: Sequence[Attempt], now: datetime
) -> None:
    """Record a batch of attempts, each only if its lease is still ours."""
    delivered = [a for a in attempts if a.delivered]
    retried = [a for a in attempts if not a.delivered and a.retry_at is not None]
    dead = [a for a in attempts if not a.delivered and a.retry_at is None]
    ours = and_(
        callback_deliveries.c.seq == bindparam("b_seq"),
        callback_deliveries.c.lease_owner == owner,
    )
    released = {"lease_until": None, "lease_owner": None}
    if delivered:
        await conn.execute(
            update(callback_deliveries)
            .where(ours)
            .values(
                status=DELIVERED,
                delivered_at=now,
                last_status_code=bindparam("b_code"),
                last_error=None,
                **released,
            ),
            [{"b_seq": a.seq, "b_code": a.status_code} for a in delivered],
        )
    if retried:
        await conn.execute(
            update(callback_deliveries)
            .where(ours)
            .values(
                available_at=bindparam("b_at"),
                last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"),
                **released,
            ),
            [
                {"b_seq": a.seq, "b_at": a.retry_at, "b_code": a.status_code, "b_error": a.error}
                for a in retried
            ],
        )
    if dead:
        await conn.execute(
            update(callback_deliveries)
            .where(ours)
            .values(
                status=FAILED,
                last_status_code=bindparam("b_code"),
                last_error=bindparam("b_error"),
                **released,
            ),
            [{"b_seq": a.seq, "b_code": a.status_code, "b_error": a.error} for a in dead],
        )


async def pending_count(conn: AsyncConnection) -> int:
    result = await conn.execute(
        select(func.count())
        .select_from(callback_deliveries)
        .where(callback_deliveries.c.status == PENDING)
    )
    return int(result.scalar_one())
