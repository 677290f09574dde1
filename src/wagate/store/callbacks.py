"""The callbacks outbox: events for the business, queued in the transaction that caused them and
claimed by lane under a lease. (The rows stay as the delivery log: see `callback_log`.)

A lane is one message's status events, or one customer's inbound messages on one number; only
a lane's oldest pending event may be claimed, so a lane's events reach the business in order,
one at a time, while different lanes go in parallel. Each event is noted as an arrival for the
sender, which keeps the lanes, their heads and each account's backoff as rows
(store/callback_lanes.py), so that a claim reads what it takes. A claim is a lease: if the sender
dies, the event is claimable again when the lease ends (delivery is at-least-once; the event
`id` lets receivers drop a repeat).

The sender's side (claims by account, backoff, recording attempts) is store/callback_claims.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text
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
from wagate.store import callback_lanes
from wagate.store.sql import from_driver, marks
from wagate.store.tables import accounts, callback_deliveries, messages

if TYPE_CHECKING:
    from wagate.store.accounts import Channel
    from wagate.store.statuses import StatusChange

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
_CHUNK = 500
# Namespace of the PostgreSQL advisory locks that order concurrent inserts into one lane.
_LANE_LOCK_SPACE = 0x77616763

# --------------------------------------------------------------------------- queueing events


# Driver SQL (the same on both dialects; `{}`: the ids' marks): it runs for every batch of
# status changes, and SQLAlchemy compiled its expanding IN (...) again on every call.
_CALLED_BACK = (
    "SELECT m.id, m.account_id, m.phone, m.wamid, m.metadata FROM messages m"
    " JOIN accounts a ON a.id = m.account_id"
    " WHERE m.id IN ({}) AND a.callback_url IS NOT NULL"
)


@dataclass(frozen=True, slots=True)
class _CalledBack:
    """A message whose account takes callbacks: what its status events carry."""

    account_id: str
    phone: str
    wamid: str | None
    metadata: dict[str, Any] | None


async def enqueue_status_events(
    conn: AsyncConnection, changes: Sequence[StatusChange], *, now: datetime
) -> int:
    """Queue a `message.status` event per change, in the order given (each message's changes
    in lifecycle order), for accounts that have a callback URL. Returns how many."""
    if not changes:
        return 0
    ids = list(dict.fromkeys(c.message_id for c in changes))
    found: dict[str, _CalledBack] = {}
    metadata_from = from_driver(conn.dialect, messages.c.metadata)
    for i in range(0, len(ids), _CHUNK):
        chunk = tuple(ids[i : i + _CHUNK])
        sql = _CALLED_BACK.format(marks(conn.dialect, len(chunk)))
        rows: Sequence[Any] = (await conn.exec_driver_sql(sql, chunk)).all()
        for message_id, account_id, phone, wamid, metadata in rows:
            found[message_id] = _CalledBack(account_id, phone, wamid, metadata_from(metadata))
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


_INSERT = callback_deliveries.insert().returning(
    callback_deliveries.c.seq,
    callback_deliveries.c.lane,
    callback_deliveries.c.account_id,
    sort_by_parameter_order=True,
)


async def _insert(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    # The rows go in order, so `seq` follows the order of the lane's events; each is noted as an
    # arrival for the sender's next claim to place in its lane.
    if rows:
        result = await conn.execute(_INSERT, rows)
        await callback_lanes.arrive(conn, [(r.seq, r.lane, r.account_id) for r in result])
