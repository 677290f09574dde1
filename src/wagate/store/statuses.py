"""Meta's status reports and the customers' messages: applied once, only ever forward, and
only to the messages of the channel that reported them (a channel's app secret signs its
webhooks; another tenant's channel must not move this one's messages, even by a wamid it
learned)."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.domain.callbacks import StatusError
from wagate.domain.failures import error_slug
from wagate.domain.models import InboundMessage, MetaError, Status, StatusUpdate
from wagate.domain.status import advances, lifecycle_rank
from wagate.store import callbacks as callback_store
from wagate.store.accounts import Channel
from wagate.store.media import queue_inbound_download
from wagate.store.messages import last_inbound_at
from wagate.store.sql import BulkInsert, from_driver, insert_ignore, marks, to_driver
from wagate.store.tables import (
    conversations,
    inbound_messages,
    message_events,
    messages,
    pending_statuses,
    webhook_events,
)

_WEBHOOK = BulkInsert(webhook_events, ("received_at", "body", "inbound_count", "status_count"))


async def store_webhook(
    conn: AsyncConnection, *, raw_body: bytes, inbound: int, statuses: int, now: datetime
) -> None:
    """The raw body as Meta sent it (one per signed POST; driver SQL: see `BulkInsert`)."""
    await _WEBHOOK.execute(
        conn,
        [
            {
                "received_at": now,
                "body": raw_body.decode("utf-8", errors="replace"),
                "inbound_count": inbound,
                "status_count": statuses,
            }
        ],
    )


async def record_inbound(
    conn: AsyncConnection, *, channel: Channel, message: InboundMessage, now: datetime
) -> bool:
    """Store a customer's message and open (or restart) their window. Returns False for a
    message we had already seen (Meta retries webhooks)."""
    new = await insert_ignore(
        conn,
        inbound_messages,
        {
            "channel_id": channel.id,
            "phone": message.phone,
            "wamid": message.wamid,
            "kind": message.kind,
            "text": message.text,
            "button_id": message.button_id,
            "button_payload": message.button_payload,
            "context_wamid": message.context_wamid,
            "content": message.content,
            "sent_at": message.timestamp,
            "received_at": now,
        },
        ["channel_id", "wamid"],
    )
    if not new:
        return False
    if message.media is not None:
        await queue_inbound_download(conn, channel=channel, message=message, now=now)
    # The window counts from when the customer sent the message, and only a newer message can
    # move it: a late webhook for an old message must not reopen a closed window.
    last = await last_inbound_at(conn, channel_id=channel.id, phone=message.phone)
    if last is None:
        await insert_ignore(
            conn,
            conversations,
            {
                "channel_id": channel.id,
                "phone": message.phone,
                "account_id": channel.account_id,
                "last_inbound_at": message.timestamp,
                "profile_name": message.profile_name,
                "updated_at": now,
            },
            ["channel_id", "phone"],
        )
    if last is None or message.timestamp > last:
        await conn.execute(
            update(conversations)
            .where(
                conversations.c.channel_id == channel.id,
                conversations.c.phone == message.phone,
                conversations.c.last_inbound_at < message.timestamp,
            )
            .values(
                last_inbound_at=message.timestamp,
                updated_at=now,
                **({"profile_name": message.profile_name} if message.profile_name else {}),
            )
        )
    return True


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One step a message's status moved (for callbacks and metrics); `error` when failed."""

    message_id: str
    status: Status
    occurred_at: datetime
    error: StatusError | None = None


log = logging.getLogger("wagate.webhooks")


@dataclass(frozen=True, slots=True)
class Report:
    """One status report for one wamid, from a webhook or parked until its wamid was known;
    `channel_id` is the channel whose webhook (signed with its app secret) reported it."""

    channel_id: str
    wamid: str
    status: Status
    occurred_at: datetime
    errors: tuple[MetaError, ...] = ()


def _errors_json(errors: Iterable[MetaError]) -> list[dict[str, Any]]:
    return [{"code": e.code, "title": e.title, "details": e.details} for e in errors]


def _errors_from_json(raw: Any) -> tuple[MetaError, ...]:
    if isinstance(raw, str):
        raw = json.loads(raw)
    return tuple(
        MetaError(e.get("code"), e.get("title") or "", e.get("details") or "") for e in raw or ()
    )


_CHUNK = 500


# Namespace of the PostgreSQL advisory locks taken on wamids (see `lock_wamids`).
_WAMID_LOCK_SPACE = 0x77616D69
# In key order, so that two transactions locking overlapping sets cannot deadlock.
_LOCK_WAMIDS = text(
    "SELECT pg_advisory_xact_lock(CAST(:space AS integer), k) FROM (SELECT DISTINCT "
    "hashtext(w) AS k FROM unnest(CAST(:wamids AS text[])) AS w ORDER BY k) AS keys"
)


async def lock_wamids(conn: AsyncConnection, wamids: Sequence[str]) -> None:
    """Serialise, per wamid, the transaction that records a send's wamid and those that apply
    Meta's reports on it (PostgreSQL; SQLite serialises all writers anyway).

    Without it the two can overlap under READ COMMITTED: the webhook's transaction does not see
    the uncommitted wamid and parks its report, while the send's transaction does not see the
    uncommitted parked report and finds nothing to apply, so the report stays parked and the
    message never moves past `accepted`. With it, whichever comes second waits for the first to
    commit and then sees what it wrote."""
    if wamids and conn.dialect.name == "postgresql":
        await conn.execute(_LOCK_WAMIDS, {"space": _WAMID_LOCK_SPACE, "wamids": sorted(wamids)})


# What a webhook's reports run (many times a second, for a few to hundreds of messages each):
# written for the driver, the same SQL on SQLite and PostgreSQL, and sent as they are. Through
# SQLAlchemy's expressions each expanding IN (...) was compiled again on every call and each
# inserted row went through its per-row machinery: more CPU than the statements themselves.
_KNOWN_WAMIDS = "SELECT id, status, wamid, channel_id FROM messages WHERE wamid IN ({})"
_MOVE_FORWARD = (
    "UPDATE messages SET status = {mark}, updated_at = {mark} "
    "WHERE id IN ({ids}) AND status IN ({behind}) RETURNING id"
)
_IGNORE = "ON CONFLICT ({}) DO NOTHING"
_PARK = BulkInsert(
    pending_statuses,
    ("wamid", "channel_id", "status", "occurred_at", "errors", "received_at"),
    suffix=dict.fromkeys(("sqlite", "postgresql"), _IGNORE.format("wamid, channel_id, status")),
)
_EVENTS = BulkInsert(
    message_events,
    (
        "message_id",
        "status",
        "occurred_at",
        "recorded_at",
        "meta_code",
        "error_title",
        "error_details",
    ),
    suffix=dict.fromkeys(("sqlite", "postgresql"), _IGNORE.format("message_id, status")),
)
# Run with every recorded send (driver SQL, as above; `{}`: the wamids' marks).
_PARKED = (
    "SELECT channel_id, wamid, status, occurred_at, errors FROM pending_statuses "
    "WHERE wamid IN ({})"
)
_UNPARK = "DELETE FROM pending_statuses WHERE wamid IN ({})"


async def apply_reports(
    conn: AsyncConnection, reports: Sequence[Report], *, now: datetime
) -> list[StatusChange]:
    """Apply status reports set-wise: each (message, status) event is recorded once, and a
    message moves only forward, whatever order, repetition or lateness the reports come in.
    Reports for wamids we have not recorded yet are parked (see `apply_parked`).

    A report about another channel's message is dropped: only the channel that sent a
    message may report on it.

    Returns every step a message moved, in lifecycle order (sent, delivered and read when all
    three arrive at once; nothing for a report that does not move it forward), and queues a
    callback event for each, in this transaction."""
    if not reports:
        return []
    wamids = list({r.wamid for r in reports})
    await lock_wamids(conn, wamids)
    known: dict[str, tuple[str, Status]] = {}
    owner: dict[str, str] = {}
    for i in range(0, len(wamids), _CHUNK):
        some = wamids[i : i + _CHUNK]
        sql = _KNOWN_WAMIDS.format(marks(conn.dialect, len(some)))
        rows: Sequence[Any] = (await conn.exec_driver_sql(sql, tuple(some))).all()
        for message_id, status, wamid, channel_id in rows:
            known[wamid] = (message_id, Status(status))
            owner[wamid] = channel_id
    ours = [r for r in reports if owner.get(r.wamid, r.channel_id) == r.channel_id]
    if len(ours) < len(reports):
        log.warning(
            "dropped %d status reports on other channels' messages", len(reports) - len(ours)
        )
        reports = ours
    parked = [r for r in reports if r.wamid not in known]
    if parked:
        await _PARK.execute(
            conn,
            [
                {
                    "wamid": r.wamid,
                    "channel_id": r.channel_id,
                    "status": r.status.value,
                    "occurred_at": r.occurred_at,
                    "errors": _errors_json(r.errors),
                    "received_at": now,
                }
                for r in parked
            ],
        )
    by_message: dict[str, list[Report]] = defaultdict(list)
    for r in reports:
        if r.wamid in known:
            by_message[known[r.wamid][0]].append(r)
    if not by_message:
        return []
    events = []
    for message_id, items in by_message.items():
        for r in items:
            first = r.errors[0] if r.errors else None
            events.append(
                {
                    "message_id": message_id,
                    "status": r.status.value,
                    "occurred_at": r.occurred_at,
                    "recorded_at": now,
                    "meta_code": first.code if first else None,
                    "error_title": first.title if first else None,
                    "error_details": first.details if first else None,
                }
            )
    # Which (message, status) events are new here: on PostgreSQL a concurrent transaction may
    # have recorded one since `known` was read, and then it, not this one, reports the step.
    new_events = set(await _EVENTS.returning(conn, events, ("message_id", "status")))

    current = {message_id: status for message_id, status in known.values()}
    steps: dict[str, list[StatusChange]] = {}
    moved: dict[Status, list[str]] = defaultdict(list)
    failures: list[dict[str, Any]] = []
    for message_id, items in by_message.items():
        status = current[message_id]
        taken: list[Report] = []
        for r in sorted(items, key=lambda r: lifecycle_rank(r.status)):
            if advances(status, r.status):
                status = r.status
                taken.append(r)
        if not taken:
            continue
        final, error = taken[-1], None
        if status is Status.FAILED:
            first = final.errors[0] if final.errors else None
            code = first.code if first else None
            title, details = (first.title, first.details) if first else ("Failed", "")
            error = StatusError(error_slug(code), code, title, details)
            failures.append(
                {
                    "b_id": message_id,
                    "b_code": error.code,
                    "b_meta_code": code,
                    "b_title": title,
                    "b_details": details,
                }
            )
        steps[message_id] = [
            StatusChange(message_id, r.status, r.occurred_at, error if r is final else None)
            for r in taken
        ]
        if status is not Status.FAILED:
            moved[status].append(message_id)
    # Each UPDATE only moves rows that are still behind the new status, so a concurrent
    # transaction that already moved a message further wins, on every dialect.
    applied: set[str] = set()
    for status, ids in moved.items():
        for i in range(0, len(ids), _CHUNK):
            some = ids[i : i + _CHUNK]
            behind = _behind(status)
            sql = _MOVE_FORWARD.format(
                mark=marks(conn.dialect, 1),
                ids=marks(conn.dialect, len(some)),
                behind=marks(conn.dialect, len(behind)),
            )
            params = (status.value, to_driver(conn.dialect, messages.c.updated_at)(now))
            result = await conn.exec_driver_sql(sql, (*params, *some, *behind))
            applied.update(r[0] for r in result)
    if failures:
        await conn.execute(
            update(messages)
            .where(
                messages.c.id == bindparam("b_id"),
                # Not IN (…): an expanding parameter cannot be part of an executemany.
                or_(*(messages.c.status == s for s in _behind(Status.FAILED))),
            )
            .values(
                status=Status.FAILED.value,
                updated_at=now,
                error_code=bindparam("b_code"),
                meta_code=bindparam("b_meta_code"),
                error_title=bindparam("b_title"),
                error_details=bindparam("b_details"),
            ),
            failures,
        )
        ids = [f["b_id"] for f in failures]
        for i in range(0, len(ids), _CHUNK):
            result = await conn.execute(
                select(messages.c.id).where(
                    messages.c.id.in_(ids[i : i + _CHUNK]),
                    messages.c.status == Status.FAILED.value,
                )
            )
            applied.update(r.id for r in result)
    # A step is reported only by the transaction that moved the message and recorded it.
    changes = [
        change
        for message_id, taken in steps.items()
        if message_id in applied
        for change in taken
        if (message_id, change.status.value) in new_events
    ]
    await callback_store.enqueue_status_events(conn, changes, now=now)
    return changes


def _behind(status: Status) -> list[str]:
    return [s.value for s in Status if advances(s, status)]


async def apply_parked(
    conn: AsyncConnection, wamids: Sequence[str], *, now: datetime
) -> list[StatusChange]:
    """Apply reports that arrived before we recorded their wamids (just recorded now)."""
    if not wamids:
        return []
    dialect = conn.dialect
    asked = tuple(wamids)
    rows: Sequence[Any] = (
        await conn.exec_driver_sql(_PARKED.format(marks(dialect, len(asked))), asked)
    ).all()
    if not rows:
        return []
    occurred = from_driver(dialect, pending_statuses.c.occurred_at)
    errors = from_driver(dialect, pending_statuses.c.errors)
    parked = [
        Report(channel_id, wamid, Status(status), occurred(at), _errors_from_json(errors(raw)))
        for channel_id, wamid, status, at, raw in rows
    ]
    found = tuple({p.wamid for p in parked})
    await conn.exec_driver_sql(_UNPARK.format(marks(dialect, len(found))), found)
    return await apply_reports(conn, parked, now=now)


def reports_from(updates: Iterable[StatusUpdate], channels: Mapping[str, Channel]) -> list[Report]:
    """The reports of the updates about `channels` (by phone number id); others are left out."""
    return [
        Report(channel.id, u.wamid, u.status, u.timestamp, tuple(u.errors))
        for u in updates
        if (channel := channels.get(u.phone_number_id)) is not None
    ]


async def prune_parked(conn: AsyncConnection, *, older_than: datetime, limit: int) -> int:
    """Delete up to `limit` parked reports received before `older_than` (reports whose wamid
    no send of ours ever recorded); returns how many. Small batches keep each transaction
    short; call it again while it returns `limit`."""
    oldest = (
        select(pending_statuses.c.id)
        .where(pending_statuses.c.received_at < older_than)
        .order_by(pending_statuses.c.received_at)
        .limit(limit)
    )
    result = await conn.execute(delete(pending_statuses).where(pending_statuses.c.id.in_(oldest)))
    return int(result.rowcount or 0)


async def parked_count(conn: AsyncConnection) -> int:
    result = await conn.execute(select(func.count()).select_from(pending_statuses))
    return int(result.scalar_one())
