"""The outbox's lanes as data: one row per (business number, recipient) with messages queued,
naming the lane's head and when it may be claimed, so that a claim reads the next N rows of one
index instead of looking at every waiting recipient.

How the rows stay true to the outbox:

- accepting a message into an empty lane adds the lane with that message as its head (a lane
  that exists already has an older head; the new message waits behind it);
- a claim moves the lane's `due_at` to the end of its lease, so a crashed claimer's heads come
  back by themselves when the lease ends;
- when a head leaves (sent, failed) the lane moves on to its oldest remaining message, or goes;
  a head put back for a retry keeps its lane, due at the retry.

On PostgreSQL, a message accepted into a lane while its head leaves must not be missed (the head
leaving sees no next message and removes the lane, then the accept commits): the accept's upsert
locks the lane row (`DO UPDATE`, not `DO NOTHING`) and whoever moves a head on locks its lane
first (`lock`), so one of them waits for the other and then sees its rows. Both take the locks
in the same order (channel, phone), and claims skip locked lanes, so nobody waits in a circle.
SQLite runs one writer at a time (BEGIN IMMEDIATE), which already rules the race out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.store.sql import BulkInsert, marks
from wagate.store.tables import UTCDateTime, outbox_lanes

# A lease holds up to its last instant: the lane is due again just after it (times are kept to
# the microsecond on both dialects), while a head available at `t` is due at `t` itself.
LEASE_END = timedelta(microseconds=1)

# A lane's head must be its oldest message, so of several messages accepted into an empty lane
# in one batch only the oldest is offered (`heads_of`); the others wait behind it.
INSERT_LANES = BulkInsert(
    outbox_lanes,
    ("channel_id", "phone", "head_id", "due_at"),
    suffix={
        "sqlite": "ON CONFLICT (channel_id, phone) DO NOTHING",
        "postgresql": (
            "ON CONFLICT (channel_id, phone) DO UPDATE SET head_id = outbox_lanes.head_id"
        ),
    },
)

# The claim: the next `limit` lanes that are due, oldest first, leased by moving their due time
# to the end of the lease. An index range scan of ix_outbox_lanes_due: it reads `limit` rows
# (plus, on PostgreSQL, the ones other workers hold locked right now), whatever is waiting.
TAKE_TEXT = {
    "sqlite": """
UPDATE outbox_lanes SET due_at = :lease_until
WHERE head_id IN (
    SELECT head_id FROM outbox_lanes WHERE due_at <= :now ORDER BY due_at, head_id LIMIT :limit)
RETURNING head_id, channel_id, phone
""",
    # By the rows' physical address (a TID scan), so the planner cannot prefer reading the
    # whole table to joining the ones picked. Locked, so the address stays theirs until updated.
    "postgresql": """
UPDATE outbox_lanes SET due_at = :lease_until
WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM outbox_lanes WHERE due_at <= :now ORDER BY due_at, head_id LIMIT :limit
    FOR UPDATE SKIP LOCKED))
RETURNING head_id, channel_id, phone
""",
}
TAKE_SQL = {
    dialect: text(sql).bindparams(
        bindparam("now", type_=UTCDateTime), bindparam("lease_until", type_=UTCDateTime)
    )
    for dialect, sql in TAKE_TEXT.items()
}

_LOCK = text(
    'SELECT head_id FROM outbox_lanes WHERE head_id IN :ids ORDER BY channel_id COLLATE "C",'
    ' phone COLLATE "C" FOR UPDATE'
).bindparams(bindparam("ids", expanding=True))

# Moving lanes on once their heads have left the outbox: first the lanes with nothing left go,
# then the others take their oldest message (through ix_outbox_lane: a lookup per lane).
_NEXT_HEAD = (
    "(SELECT MIN(n.message_id) FROM outbox n"
    " WHERE n.channel_id = outbox_lanes.channel_id AND n.phone = outbox_lanes.phone)"
)
# Driver SQL (the same on both dialects; `{}`: the ids' marks): they run with every recorded
# send, and SQLAlchemy compiled each expanding IN (...) again on every call.
_DROP_EMPTY = (
    "DELETE FROM outbox_lanes WHERE head_id IN ({}) AND NOT EXISTS ("
    " SELECT 1 FROM outbox n WHERE n.channel_id = outbox_lanes.channel_id"
    " AND n.phone = outbox_lanes.phone)"
)
_MOVE_ON = (
    f"UPDATE outbox_lanes SET head_id = {_NEXT_HEAD},"
    f" due_at = (SELECT o.available_at FROM outbox o WHERE o.message_id = {_NEXT_HEAD})"
    " WHERE head_id IN ({})"
)
_POSTPONE = text("UPDATE outbox_lanes SET due_at = :due_at WHERE head_id = :head_id").bindparams(
    bindparam("due_at", type_=UTCDateTime)
)


def heads_of(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lane rows for newly queued outbox rows: the oldest message of each lane, in lock order."""
    heads: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["channel_id"], row["phone"])
        head = heads.get(key)
        if head is None or row["message_id"] < head["head_id"]:
            heads[key] = {
                "channel_id": row["channel_id"],
                "phone": row["phone"],
                "head_id": row["message_id"],
                "due_at": row["available_at"],
            }
    return [heads[key] for key in sorted(heads)]


async def add(conn: AsyncConnection, queued: Sequence[dict[str, Any]]) -> None:
    """Give newly queued outbox rows (`message_id`, `channel_id`, `phone`, `available_at`)
    their lanes, in the transaction that queues them. A lane that exists keeps its head."""
    await INSERT_LANES.execute(conn, heads_of(queued))


async def take(
    conn: AsyncConnection, *, now: datetime, lease_until: datetime, limit: int
) -> list[Any]:
    """Lease the next `limit` due lanes; their (head_id, channel_id, phone) rows."""
    result = await conn.execute(
        TAKE_SQL[conn.dialect.name],
        {"now": now, "lease_until": lease_until + LEASE_END, "limit": limit},
    )
    return list(result)


async def lock(conn: AsyncConnection, head_ids: Sequence[str]) -> None:
    """Lock the lanes of these heads before they are moved on (PostgreSQL; see the module's
    docstring). A no-op on SQLite, whose writers already take turns."""
    if head_ids and conn.dialect.name == "postgresql":
        await conn.execute(_LOCK, {"ids": list(head_ids)})


async def move_on(conn: AsyncConnection, left: Sequence[str]) -> None:
    """The heads `left` have left the outbox (sent, failed, gone): their lanes take their next
    message, or go when none is left."""
    if not left:
        return
    ids = tuple(left)
    places = marks(conn.dialect, len(ids))
    await conn.exec_driver_sql(_DROP_EMPTY.format(places), ids)
    await conn.exec_driver_sql(_MOVE_ON.format(places), ids)


async def postpone(conn: AsyncConnection, retries: Sequence[tuple[str, datetime]]) -> None:
    """Heads put back for another attempt: their lanes are due again at that time."""
    if retries:
        await conn.execute(_POSTPONE, [{"head_id": h, "due_at": at} for h, at in retries])
