"""The outbox queue: claim due messages under a lease, then record what Meta answered.

A claim takes only the head of each lane (one business number, one recipient), so a recipient's
messages go out one at a time in the order they were accepted, while different recipients go in
parallel. The lanes and their heads are kept as rows (store/outbox_lanes.py), so a claim costs
the same however many recipients are waiting. A claim is a lease: if the claimer dies, the row
is claimable again when it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.domain.callbacks import StatusError
from wagate.domain.models import Status
from wagate.store import callbacks as callback_store
from wagate.store import outbox_lanes
from wagate.store.sql import BulkInsert, from_driver, marks, to_driver
from wagate.store.statuses import StatusChange, apply_parked, lock_wamids
from wagate.store.tables import conversations, message_events, messages, outbox

# The claim itself is store/outbox_lanes.py's: the next due lanes, leased. Their heads' outbox
# rows take the lease too (the owner is what `record_outcomes` checks), and count the attempt.
# Driver SQL, the same on both dialects (see `_RELEASE` below).
_LEASE = (
    "UPDATE outbox SET lease_until = {mark}, lease_owner = {mark}, attempts = attempts + 1 "
    "WHERE message_id IN ({ids}) RETURNING message_id, channel_id, phone, attempts"
)


# What recording a send runs (for every few sends at a paced channel's rate): written for the
# driver, the same SQL on SQLite and PostgreSQL, as store/statuses.py's reports are. Through
# SQLAlchemy each expanding IN (...) was compiled again on every call and each row went through
# its per-row machinery, which cost more than the statements.
_RELEASE = (
    "DELETE FROM outbox WHERE message_id IN ({ids}) AND lease_owner = {mark} RETURNING message_id"
)
_MARK_SENT = (
    "UPDATE messages SET status = {mark}, wamid = {mark}, updated_at = {mark}, "
    "attempts = attempts + 1 WHERE id = {mark}"
)
# A status step without an error (queued, accepted): also written by store/accepts.py.
INSERT_STEPS = BulkInsert(message_events, ("message_id", "status", "occurred_at", "recorded_at"))


# What sending a claimed message needs (it runs with every claim; driver SQL, `{}`: the ids'
# marks). Only the account's own message can be quoted: another's id quotes nothing.
_CLAIMED_CONTENT = (
    "SELECT m.id, m.type, m.content, m.reply_to, q.wamid, c.last_inbound_at FROM messages m"
    " LEFT OUTER JOIN messages q ON q.id = m.reply_to AND q.account_id = m.account_id"
    " LEFT OUTER JOIN conversations c ON c.channel_id = m.channel_id AND c.phone = m.phone"
    " WHERE m.id IN ({})"
)


@dataclass(frozen=True, slots=True)
class Claim:
    message_id: str
    channel_id: str
    phone: str
    attempts: int  # including this one
    type: str
    content: dict[str, Any]
    reply_to_wamid: str | None  # the wamid to quote, when the message replies to one
    last_inbound_at: datetime | None  # the customer's window, as of the claim


async def claim(
    conn: AsyncConnection, *, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[Claim]:
    """Lease up to `limit` lane heads that are due, with what sending them needs."""
    lease_until = now + lease
    lanes = await outbox_lanes.take(conn, now=now, lease_until=lease_until, limit=limit)
    if not lanes:
        return []
    heads = [lane.head_id for lane in lanes]
    dialect = conn.dialect
    leased: Sequence[Any] = (
        await conn.exec_driver_sql(
            _LEASE.format(mark=marks(dialect, 1), ids=marks(dialect, len(heads))),
            (to_driver(dialect, outbox.c.lease_until)(lease_until), owner, *heads),
        )
    ).all()
    claimed = {message_id: (channel_id, phone, n) for message_id, channel_id, phone, n in leased}
    missing = [h for h in heads if h not in claimed]
    if missing:
        # A lane naming a message that is no longer queued (nothing removes outbox rows behind
        # the lanes' back, but a hand-edited database might): it moves on to what is queued.
        await outbox_lanes.move_on(conn, missing)
    if not claimed:
        return []
    ids = tuple(claimed)
    rows: Sequence[Any] = (
        await conn.exec_driver_sql(_CLAIMED_CONTENT.format(marks(dialect, len(ids))), ids)
    ).all()
    content_from = from_driver(dialect, messages.c.content)
    inbound_from = from_driver(dialect, conversations.c.last_inbound_at)
    out = []
    for message_id, type_, content, reply_to, quoted_wamid, last_inbound_at in rows:
        channel_id, phone, attempts = claimed[message_id]
        reply_to_wamid = reply_to
        if reply_to and reply_to.startswith("msg_"):
            reply_to_wamid = quoted_wamid  # None until that message has been sent
        out.append(
            Claim(
                message_id=message_id,
                channel_id=channel_id,
                phone=phone,
                attempts=attempts,
                type=type_,
                content=content_from(content),
                reply_to_wamid=reply_to_wamid,
                last_inbound_at=inbound_from(last_inbound_at),
            )
        )
    out.sort(key=lambda c: c.message_id)
    return out


@dataclass(frozen=True, slots=True)
class Sent:
    """Meta took the message and answered with its wamid (None for a read receipt, which Meta
    answers with `{"success": true}` only)."""

    message_id: str
    wamid: str | None


@dataclass(frozen=True, slots=True)
class Failed:
    """A permanent failure, retries given up, or the window closed: the message is failed."""

    message_id: str
    code: str
    title: str
    details: str
    meta_code: int | None = None
    attempted: bool = True


@dataclass(frozen=True, slots=True)
class Retry:
    """A temporary failure (or the recipient's pair rate): try again at `available_at`."""

    message_id: str
    available_at: datetime
    meta_code: int | None = None
    title: str | None = None
    details: str | None = None
    attempted: bool = True


Outcome = Sent | Failed | Retry


async def _release(conn: AsyncConnection, owner: str, ids: list[str]) -> set[str]:
    """Remove our leased rows from the outbox; returns the ids that were still ours."""
    if not ids:
        return set()
    dialect = conn.dialect
    sql = _RELEASE.format(ids=marks(dialect, len(ids)), mark=marks(dialect, 1))
    result = await conn.exec_driver_sql(sql, (*ids, owner))
    return {message_id for (message_id,) in result}


_WAMIDS_TAKEN = "SELECT wamid, id FROM messages WHERE wamid IN ({})"


async def _unclaimed_wamids(
    conn: AsyncConnection, sent: list[Sent]
) -> tuple[list[Sent], list[Failed]]:
    """The sends whose wamid no other message has, and the others as failures.

    Meta never gives two messages one wamid, but a Graph URL is configurable and whatever
    answers there may: recorded, a second message's wamid would break the unique index and
    with it the whole batch's transaction, so every other business's sends in the batch would
    go out again, and again (and statuses for one wamid could not be told apart anyway)."""
    if not any(o.wamid for o in sent):
        return sent, []
    wamids = list({o.wamid for o in sent if o.wamid})
    sql = _WAMIDS_TAKEN.format(marks(conn.dialect, len(wamids)))
    rows: Sequence[Any] = (await conn.exec_driver_sql(sql, tuple(wamids))).all()
    taken: dict[str, str] = {wamid: message_id for wamid, message_id in rows}
    clean: list[Sent] = []
    clashing: list[Failed] = []
    for o in sent:
        if o.wamid is None or taken.setdefault(o.wamid, o.message_id) == o.message_id:
            clean.append(o)
            continue
        clashing.append(
            Failed(
                o.message_id,
                code="invalid_response",
                title="invalid response",
                details="The Graph API answered with a message id (wamid) another message "
                "already has; the message may have been sent, but its statuses could not be "
                "told apart.",
            )
        )
    return clean, clashing


async def record_outcomes(
    conn: AsyncConnection, *, owner: str, outcomes: list[Outcome], now: datetime
) -> tuple[set[str], list[StatusChange]]:
    """Record what became of a batch of claimed messages, in the caller's transaction.

    A sent message's wamid is recorded in the same transaction that removes it from the
    outbox, so once this commits it can never be sent again. Outcomes for messages whose lease
    we lost (another dispatcher has them now) are dropped. Returns the ids recorded and the
    status changes that parked webhook reports caused.
    """
    sent = [o for o in outcomes if isinstance(o, Sent)]
    failed = [o for o in outcomes if isinstance(o, Failed)]
    retries = [o for o in outcomes if isinstance(o, Retry)]
    recorded: set[str] = set()

    # Before anything else, so that a status webhook for these wamids either committed its
    # parked reports before us (apply_parked below sees them) or waits and then sees the wamids.
    await lock_wamids(conn, [o.wamid for o in sent if o.wamid])
    # Then the lanes, before their heads leave (store/outbox_lanes.py: a message accepted into a
    # lane meanwhile must be seen as its next head, not lost).
    await outbox_lanes.lock(conn, [o.message_id for o in outcomes])
    left: list[str] = []
    sent, clashing = await _unclaimed_wamids(conn, sent)
    failed += clashing
    ours = await _release(conn, owner, [o.message_id for o in sent])
    left += ours
    sent = [o for o in sent if o.message_id in ours]
    if sent:
        dialect = conn.dialect
        at = to_driver(dialect, messages.c.updated_at)(now)
        await conn.exec_driver_sql(
            _MARK_SENT.format(mark=marks(dialect, 1)),
            [(Status.ACCEPTED.value, o.wamid, at, o.message_id) for o in sent],
        )
        await INSERT_STEPS.execute(
            conn,
            [
                {
                    "message_id": o.message_id,
                    "status": Status.ACCEPTED.value,
                    "occurred_at": now,
                    "recorded_at": now,
                }
                for o in sent
            ],
        )
        await callback_store.enqueue_status_events(
            conn, [StatusChange(o.message_id, Status.ACCEPTED, now) for o in sent], now=now
        )
        recorded |= ours

    ours = await _release(conn, owner, [o.message_id for o in failed])
    left += ours
    failed = [o for o in failed if o.message_id in ours]
    if failed:
        await conn.execute(
            update(messages)
            .where(messages.c.id == bindparam("b_id"))
            .values(
                status=Status.FAILED.value,
                error_code=bindparam("b_code"),
                meta_code=bindparam("b_meta_code"),
                error_title=bindparam("b_title"),
                error_details=bindparam("b_details"),
                updated_at=now,
                attempts=messages.c.attempts + bindparam("b_attempted"),
            ),
            [
                {
                    "b_id": o.message_id,
                    "b_code": o.code,
                    "b_meta_code": o.meta_code,
                    "b_title": o.title,
                    "b_details": o.details,
                    "b_attempted": 1 if o.attempted else 0,
                }
                for o in failed
            ],
        )
        await conn.execute(
            message_events.insert(),
            [
                {
                    "message_id": o.message_id,
                    "status": Status.FAILED.value,
                    "occurred_at": now,
                    "recorded_at": now,
                    "meta_code": o.meta_code,
                    "error_title": o.title,
                    "error_details": o.details,
                }
                for o in failed
            ],
        )
        await callback_store.enqueue_status_events(
            conn,
            [
                StatusChange(
                    o.message_id,
                    Status.FAILED,
                    now,
                    StatusError(o.code, o.meta_code, o.title, o.details),
                )
                for o in failed
            ],
            now=now,
        )
        recorded |= ours

    await outbox_lanes.move_on(conn, left)

    postponed: list[tuple[str, datetime]] = []
    for o in retries:
        result = await conn.execute(
            update(outbox)
            .where(outbox.c.message_id == o.message_id, outbox.c.lease_owner == owner)
            .values(
                available_at=o.available_at,
                lease_until=None,
                lease_owner=None,
                # A pair-rate postponement is not an attempt.
                attempts=outbox.c.attempts - (0 if o.attempted else 1),
            )
        )
        if result.rowcount == 0:
            continue
        recorded.add(o.message_id)
        postponed.append((o.message_id, o.available_at))
        if o.attempted:
            await conn.execute(
                update(messages)
                .where(messages.c.id == o.message_id)
                .values(
                    attempts=messages.c.attempts + 1,
                    meta_code=o.meta_code,
                    error_title=o.title,
                    error_details=o.details,
                    updated_at=now,
                )
            )
    await outbox_lanes.postpone(conn, postponed)
    changes = await apply_parked(conn, [o.wamid for o in sent if o.wamid], now=now)
    return recorded, changes
