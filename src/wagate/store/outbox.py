"""The outbox queue: claim due messages under a lease, then record what Meta answered.

A claim takes only the head of each lane (one business number, one recipient), so a recipient's
messages go out one at a time in the order they were accepted, while different recipients go in
parallel. A claim is a lease: if the claimer dies, the row is claimable again when it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.domain.models import Status
from wagate.store.statuses import apply_pending_statuses
from wagate.store.tables import message_events, messages, outbox

# The same claim on both dialects; PostgreSQL adds SKIP LOCKED so that concurrent workers pass
# over each other's rows instead of queueing behind them. SQLite runs it inside BEGIN IMMEDIATE
# (see db.py), which already serialises writers.
_CLAIM_HEADS = """
SELECT o.message_id FROM outbox o
WHERE o.available_at <= :now
  AND (o.lease_until IS NULL OR o.lease_until < :now)
  AND o.message_id = (
      SELECT MIN(o2.message_id) FROM outbox o2
      WHERE o2.channel_id = o.channel_id AND o2.phone = o.phone)
ORDER BY o.available_at, o.message_id
LIMIT :limit
"""

CLAIM_SQL = {
    "sqlite": f"""
UPDATE outbox SET lease_until = :lease_until, lease_owner = :owner, attempts = attempts + 1
WHERE message_id IN ({_CLAIM_HEADS})
RETURNING message_id, channel_id, phone, attempts
""",
    "postgresql": f"""
UPDATE outbox SET lease_until = :lease_until, lease_owner = :owner, attempts = attempts + 1
WHERE message_id IN ({_CLAIM_HEADS} FOR UPDATE OF o SKIP LOCKED)
RETURNING message_id, channel_id, phone, attempts
""",
}


@dataclass(frozen=True, slots=True)
class Claim:
    message_id: str
    channel_id: str
    phone: str
    attempts: int  # including this one
    type: str
    content: dict[str, Any]
    reply_to: str | None


def _naive(value: datetime) -> datetime:
    # Raw SQL bypasses the UTCDateTime column type, so bind what it would have stored.
    from datetime import UTC

    return value.astimezone(UTC).replace(tzinfo=None)


async def claim(
    conn: AsyncConnection, *, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[Claim]:
    result = await conn.execute(
        text(CLAIM_SQL[conn.dialect.name]),
        {
            "now": _naive(now),
            "lease_until": _naive(now + lease),
            "owner": owner,
            "limit": limit,
        },
    )
    claimed = {r.message_id: r for r in result}
    if not claimed:
        return []
    rows = await conn.execute(
        select(messages.c.id, messages.c.type, messages.c.content, messages.c.reply_to).where(
            messages.c.id.in_(claimed)
        )
    )
    out = []
    for m in rows:
        c = claimed[m.id]
        out.append(
            Claim(
                message_id=m.id,
                channel_id=c.channel_id,
                phone=c.phone,
                attempts=c.attempts,
                type=m.type,
                content=m.content,
                reply_to=m.reply_to,
            )
        )
    out.sort(key=lambda c: c.message_id)
    return out


async def wamid_of(conn: AsyncConnection, *, message_id: str) -> str | None:
    result = await conn.execute(select(messages.c.wamid).where(messages.c.id == message_id))
    return result.scalar_one_or_none()


async def record_accepted(
    conn: AsyncConnection, *, message_id: str, owner: str, wamid: str, now: datetime
) -> bool:
    """Meta took the message: record its wamid and end the lease in one transaction, so a
    crash after this point can never send it again. Returns False if our lease was lost."""
    gone = await conn.execute(
        delete(outbox).where(outbox.c.message_id == message_id, outbox.c.lease_owner == owner)
    )
    if gone.rowcount == 0:
        return False
    current = await conn.execute(
        select(messages.c.status, messages.c.attempts).where(messages.c.id == message_id)
    )
    row = current.one()
    await conn.execute(
        update(messages)
        .where(messages.c.id == message_id)
        .values(
            status=Status.ACCEPTED.value, wamid=wamid, updated_at=now, attempts=row.attempts + 1
        )
    )
    await conn.execute(
        message_events.insert().values(
            message_id=message_id,
            status=Status.ACCEPTED.value,
            occurred_at=now,
            recorded_at=now,
        )
    )
    await apply_pending_statuses(
        conn, message_id=message_id, wamid=wamid, current=Status.ACCEPTED, now=now
    )
    return True


async def record_failed(
    conn: AsyncConnection,
    *,
    message_id: str,
    owner: str | None,
    code: str,
    title: str,
    details: str,
    meta_code: int | None,
    now: datetime,
    attempted: bool = True,
) -> bool:
    """A permanent failure, or retries given up: the message is failed and leaves the queue."""
    query = delete(outbox).where(outbox.c.message_id == message_id)
    if owner is not None:
        query = query.where(outbox.c.lease_owner == owner)
    gone = await conn.execute(query)
    if gone.rowcount == 0:
        return False
    await conn.execute(
        update(messages)
        .where(messages.c.id == message_id)
        .values(
            status=Status.FAILED.value,
            error_code=code,
            meta_code=meta_code,
            error_title=title,
            error_details=details,
            updated_at=now,
            attempts=messages.c.attempts + (1 if attempted else 0),
        )
    )
    await conn.execute(
        message_events.insert().values(
            message_id=message_id,
            status=Status.FAILED.value,
            occurred_at=now,
            recorded_at=now,
            meta_code=meta_code,
            error_title=title,
            error_details=details,
        )
    )
    return True


async def record_retry(
    conn: AsyncConnection,
    *,
    message_id: str,
    owner: str,
    available_at: datetime,
    meta_code: int | None,
    title: str,
    details: str,
    now: datetime,
) -> bool:
    """A temporary failure: release the lease and try again at `available_at`."""
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.message_id == message_id, outbox.c.lease_owner == owner)
        .values(available_at=available_at, lease_until=None, lease_owner=None)
    )
    if result.rowcount == 0:
        return False
    await conn.execute(
        update(messages)
        .where(messages.c.id == message_id)
        .values(
            attempts=messages.c.attempts + 1,
            meta_code=meta_code,
            error_title=title,
            error_details=details,
            updated_at=now,
        )
    )
    return True


async def queue_depth(conn: AsyncConnection) -> int:
    from sqlalchemy import func

    result = await conn.execute(select(func.count()).select_from(outbox))
    return int(result.scalar_one())
