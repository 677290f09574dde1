"""The reads and writes of one accept transaction (`store/accepts.py` decides what they mean).

Two implementations of one small interface, `AcceptRows`:

- `CoreRows`: SQLAlchemy Core on an `AsyncConnection` (PostgreSQL; SQLite through plain
  aiosqlite, for an in-memory database or a URL with driver options);
- `accept_rows_sqlite.DirectRows`: the same statements written out for SQLite and run straight on
  the driver's connection (a SQLite file, the default): a request that commits alone spends
  most of its time otherwise in SQLAlchemy's and aiosqlite's layers.

A write added to accepting (a table kept in step with the outbox, say) goes in both; the test
`test_both_ways_of_accepting_store_the_same_rows` compares what they store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.domain.models import Status
from wagate.store import idempotency, outbox_lanes
from wagate.store.idempotency import Replayed
from wagate.store.outbox import INSERT_STEPS
from wagate.store.sql import BulkInsert
from wagate.store.tables import (
    UTCDateTime,
    accounts,
    api_tokens,
    channels,
    conversations,
    messages,
    outbox,
)

Pair = tuple[str, str]  # (account_id, idempotency key)


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: str
    token_hash: str
    account_id: str
    last_used_at: datetime | None
    api_rate: int


@dataclass(frozen=True, slots=True)
class ChannelChoice:
    """What choosing the sending channel needs to know of one."""

    id: str
    account_id: str
    phone_number_id: str
    display_phone_number: str | None
    is_default: bool


class AcceptRows(Protocol):
    async def tokens(self, hashes: Sequence[str]) -> list[TokenRow]:
        """The live (not revoked) tokens among these hashes, with their account's API rate."""

    async def channels(self, account_ids: Sequence[str]) -> list[ChannelChoice]:
        """The accounts' channels, oldest first."""

    async def idempotency(
        self, pairs: Sequence[Pair], *, now: datetime
    ) -> dict[Pair, tuple[str, Replayed]]:
        """The live keys among `pairs`: their request hash and first answer."""

    async def windows(
        self, channel_ids: Sequence[str], phones: Sequence[str]
    ) -> dict[tuple[str, str], datetime]:
        """`last_inbound_at` by (channel, phone), for the conversations there are."""

    async def claim_keys(self, entries: Sequence[dict[str, Any]], *, now: datetime) -> set[Pair]:
        """Store these idempotency entries; the pairs that were free and are now ours."""

    async def store(self, rows: Sequence[dict[str, Any]], *, now: datetime) -> None:
        """The message rows, each with its `queued` event, its outbox row and its lane (a lane
        that exists already keeps its head: store/outbox_lanes.py)."""

    async def touch_tokens(self, token_ids: Sequence[str], *, now: datetime) -> None:
        """Set the tokens' `last_used_at`."""


# Built once: constructing SQLAlchemy expressions per batch costs more than running them.
_TOKENS = (
    select(
        api_tokens.c.id,
        api_tokens.c.token_hash,
        api_tokens.c.account_id,
        api_tokens.c.last_used_at,
        accounts.c.api_rate,
    )
    .join(accounts, accounts.c.id == api_tokens.c.account_id)
    .where(
        api_tokens.c.token_hash.in_(bindparam("hashes", expanding=True)),
        api_tokens.c.revoked_at.is_(None),
    )
)
_CHANNELS = (
    select(
        channels.c.id,
        channels.c.account_id,
        channels.c.phone_number_id,
        channels.c.display_phone_number,
        channels.c.is_default,
    )
    .where(channels.c.account_id.in_(bindparam("accounts", expanding=True)))
    .order_by(channels.c.created_at, channels.c.id)
)
_WINDOWS = select(
    conversations.c.channel_id, conversations.c.phone, conversations.c.last_inbound_at
).where(
    conversations.c.channel_id.in_(bindparam("channel_ids", expanding=True)),
    conversations.c.phone.in_(bindparam("phones", expanding=True)),
)
_TOUCH = (
    update(api_tokens)
    .where(api_tokens.c.id.in_(bindparam("ids", expanding=True)))
    .values(last_used_at=bindparam("now", type_=UTCDateTime))
)
MESSAGE_COLUMNS = (
    "id",
    "account_id",
    "channel_id",
    "phone",
    "type",
    "content",
    "reply_to",
    "metadata",
    "status",
    "wamid",
    "attempts",
    "created_at",
    "updated_at",
)
INSERT_MESSAGES = BulkInsert(messages, MESSAGE_COLUMNS)
INSERT_OUTBOX = BulkInsert(
    outbox, ("message_id", "channel_id", "phone", "available_at", "attempts")
)


def queued_steps(rows: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "message_id": r["id"],
            "status": Status.QUEUED.value,
            "occurred_at": now,
            "recorded_at": now,
        }
        for r in rows
    ]


def outbox_rows(rows: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "message_id": r["id"],
            "channel_id": r["channel_id"],
            "phone": r["phone"],
            "available_at": now,
            "attempts": 0,
        }
        for r in rows
    ]


class CoreRows:
    """`AcceptRows` through SQLAlchemy Core, inside the caller's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def tokens(self, hashes: Sequence[str]) -> list[TokenRow]:
        result = await self.conn.execute(_TOKENS, {"hashes": list(hashes)})
        return [TokenRow(*row) for row in result]

    async def channels(self, account_ids: Sequence[str]) -> list[ChannelChoice]:
        result = await self.conn.execute(_CHANNELS, {"accounts": list(account_ids)})
        return [ChannelChoice(r[0], r[1], r[2], r[3], bool(r[4])) for r in result]

    async def idempotency(
        self, pairs: Sequence[Pair], *, now: datetime
    ) -> dict[Pair, tuple[str, Replayed]]:
        return await idempotency.find(self.conn, pairs, now=now)

    async def windows(
        self, channel_ids: Sequence[str], phones: Sequence[str]
    ) -> dict[tuple[str, str], datetime]:
        rows = await self.conn.execute(
            _WINDOWS, {"channel_ids": list(channel_ids), "phones": list(phones)}
        )
        return {(r.channel_id, r.phone): r.last_inbound_at for r in rows}

    async def claim_keys(self, entries: Sequence[dict[str, Any]], *, now: datetime) -> set[Pair]:
        return await idempotency.claim(self.conn, entries, now=now)

    async def store(self, rows: Sequence[dict[str, Any]], *, now: datetime) -> None:
        await INSERT_MESSAGES.execute(self.conn, rows)
        await INSERT_STEPS.execute(self.conn, queued_steps(rows, now))
        queued = outbox_rows(rows, now)
        await INSERT_OUTBOX.execute(self.conn, queued)
        await outbox_lanes.add(self.conn, queued)

    async def touch_tokens(self, token_ids: Sequence[str], *, now: datetime) -> None:
        await self.conn.execute(_TOUCH, {"ids": list(token_ids), "now": now})
