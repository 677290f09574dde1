"""Retention (SPEC §10): deleting what grows with traffic once it is older than its setting, a
small batch per transaction.

Each rule deletes at most `limit` of the oldest rows of one kind in the caller's transaction and
says how many went; the pruner (`dispatch/pruner.py`) runs them in turn. Old rows are found by
walking the table's primary key from the start (ids and sequence numbers grow with time), and the
walk stops at the first row young enough to keep: a batch reads about `limit` rows, however big
the table, and no index on the time columns is needed.

- `messages`: only messages no longer queued or in flight (no outbox row), with what refers to
  them: their status events, their `message.status` callbacks (whose lane is the message id)
  and the idempotency keys that would replay them.
- the others, by their own age: inbound messages, raw webhooks, parked status reports, callback
  deliveries, media (rows and their bytes, in the data folder or the database);
  idempotency keys once expired (24 hours, SPEC §1).

A new table is one line in `RULES` (`by_age(table, id, time)` when its ids grow with time).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import takewhile
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Table, bindparam, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wagate.store.idempotency import KEY_LIFETIME
from wagate.store.statuses import prune_parked
from wagate.store.tables import (
    UTCDateTime,
    callback_deliveries,
    idempotency_keys,
    inbound_messages,
    message_events,
    messages,
    outbox,
    webhook_events,
)

if TYPE_CHECKING:
    from wagate.config import Settings

# cutoff, limit → rows deleted (in the caller's transaction)
Prune = Callable[[AsyncConnection, datetime, int], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    prune: Prune
    days_setting: str | None = None  # the Settings field with this kind's retention in days
    fixed_age: timedelta | None = None  # or an age set by the contract
    # For a rule that needs the settings (where files are kept): makes its `prune`.
    bind: Callable[[Settings, AsyncEngine], Prune] | None = None

    def bound(self, settings: Settings, engine: AsyncEngine) -> Rule:
        return replace(self, prune=self.bind(settings, engine), bind=None) if self.bind else self


def by_age(table: Table, key: Column[Any], time: Column[Any]) -> Prune:
    """Delete the oldest rows whose `time` is before the cutoff, walking `key` (which must grow
    with time) from the start."""
    head = select(key, time).where(key > bindparam("after")).order_by(key).limit(bindparam("limit"))
    start = "" if key.type.python_type is str else -1

    async def prune(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
        rows = (await conn.execute(head, {"after": start, "limit": limit})).all()
        old = _before(rows, cutoff)
        if old:
            await conn.execute(delete(table).where(key.in_(old)))
        return len(old)

    return prune


def _before(rows: Sequence[Any], cutoff: datetime) -> list[Any]:
    """The keys of the rows up to the first one at or after the cutoff."""
    return [key for key, _ in takewhile(lambda row: bool(row[1] < cutoff), rows)]


_MESSAGE_HEAD = (
    select(messages.c.id, messages.c.created_at)
    .where(messages.c.id > bindparam("after"))
    .order_by(messages.c.id)
    .limit(bindparam("limit"))
)
_QUEUED = select(outbox.c.message_id).where(
    outbox.c.message_id.in_(bindparam("ids", expanding=True))
)
# What refers to a message, then the message.
_MESSAGE_DELETES = (
    delete(message_events).where(message_events.c.message_id.in_(bindparam("ids", expanding=True))),
    delete(callback_deliveries).where(
        callback_deliveries.c.message_id.in_(bindparam("ids", expanding=True))
    ),
    delete(idempotency_keys).where(
        idempotency_keys.c.message_id.in_(bindparam("ids", expanding=True))
    ),
    delete(messages).where(messages.c.id.in_(bindparam("ids", expanding=True))),
)


async def prune_messages(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
    """Messages created before the cutoff that are finished (sent, delivered, read, failed: no
    longer in the outbox), with their events, status callbacks and idempotency keys. A message
    still queued is stepped over, never deleted."""
    deleted = 0
    after = ""
    while deleted < limit:
        rows = (await conn.execute(_MESSAGE_HEAD, {"after": after, "limit": limit})).all()
        old = _before(rows, cutoff)
        if not old:
            break
        after = old[-1]
        queued = set((await conn.execute(_QUEUED, {"ids": old})).scalars())
        finished = [m for m in old if m not in queued]
        if finished:
            for statement in _MESSAGE_DELETES:
                await conn.execute(statement, {"ids": finished})
            deleted += len(finished)
        if len(old) < limit:
            break  # the walk met a message young enough to keep, or the end
    return deleted


_EXPIRED_KEYS = (
    select(idempotency_keys.c.account_id, idempotency_keys.c.key)
    .where(idempotency_keys.c.created_at <= bindparam("cutoff", type_=UTCDateTime))
    .order_by(idempotency_keys.c.created_at)
    .limit(bindparam("limit"))
)


async def prune_idempotency_keys(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
    """Keys past their lifetime (through their `created_at` index)."""
    pairs = [
        tuple(r) for r in await conn.execute(_EXPIRED_KEYS, {"cutoff": cutoff, "limit": limit})
    ]
    if pairs:
        await conn.execute(
            delete(idempotency_keys).where(
                tuple_(idempotency_keys.c.account_id, idempotency_keys.c.key).in_(pairs)
            )
        )
    return len(pairs)


async def prune_parked_statuses(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
    """Status reports parked for a wamid that no send of ours recorded (another business's, or
    a forgery), through their received_at index."""
    return await prune_parked(conn, older_than=cutoff, limit=limit)


async def _unbound(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
    raise RuntimeError("this rule needs the settings: use Rule.bound(settings)")


def _media_prune(settings: Settings, engine: AsyncEngine) -> Prune:
    """Stored files (uploads, fetched URLs, inbound downloads), their rows and their bytes
    wherever they are kept, with Meta's ids for content older than the cutoff."""
    from wagate.store.media import media_pruner
    from wagate.store.media_files import media_files_for

    return media_pruner(media_files_for(settings, engine))


RULES: Sequence[Rule] = (
    Rule("messages", prune_messages, "retention_messages_days"),
    Rule("inbound messages", by_age(
        inbound_messages, inbound_messages.c.id, inbound_messages.c.received_at
    ), "retention_inbound_days"),
    Rule("raw webhooks", by_age(
        webhook_events, webhook_events.c.id, webhook_events.c.received_at
    ), "retention_webhooks_days"),
    Rule("parked statuses", prune_parked_statuses, "retention_parked_days"),
    Rule("callback deliveries", by_age(
        callback_deliveries, callback_deliveries.c.seq, callback_deliveries.c.created_at
    ), "retention_callbacks_days"),
    Rule("idempotency keys", prune_idempotency_keys, fixed_age=KEY_LIFETIME),
    Rule("media", _unbound, "retention_media_days", bind=_media_prune),
)  # fmt: skip
