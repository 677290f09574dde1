"""Storing one signed webhook batch: the raw body and all its effects (windows opened, statuses
moved, callback events queued) in one transaction, before Meta gets its 200.

Bad input from Meta is still bad input: when one item of a batch cannot be stored (a value
the database refuses), the batch is stored again item by item, each in a savepoint, and only
the items the database refuses are left out (and logged). Answering 503 instead would make
Meta retry the same batch for days, and the good messages in it would never open their
windows. A connection or lock failure is not the batch's fault: it propagates (503, retried).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wagate.cloud.webhooks import WebhookBatch
from wagate.domain.models import InboundMessage
from wagate.store import callbacks as callback_store
from wagate.store import statuses as status_store
from wagate.store.accounts import Channel
from wagate.store.db import write_tx
from wagate.store.statuses import Report, StatusChange

log = logging.getLogger("wagate.webhooks")
T = TypeVar("T")
UNSTORABLE = (DataError, IntegrityError)


@dataclass
class Stored:
    """What a batch changed: the customers' new messages, the status steps, and how many
    items the database refused."""

    received: list[tuple[Channel, InboundMessage]] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    refused: int = 0


async def store_batch(
    engine: AsyncEngine,
    *,
    raw: bytes,
    batch: WebhookBatch,
    channels: Mapping[str, Channel],
    now: datetime,
) -> Stored:
    """Store `batch` (its effects only for the numbers in `channels`, by phone number id)."""
    try:
        async with write_tx(engine) as conn:
            return await _store(conn, raw, batch, channels, now, one_by_one=False)
    except UNSTORABLE as exc:
        log.warning(
            "a webhook batch holds an item the database refuses (%s); storing it item by item",
            type(exc.orig).__name__,
        )
    async with write_tx(engine) as conn:
        return await _store(conn, raw, batch, channels, now, one_by_one=True)


async def _store(
    conn: AsyncConnection,
    raw: bytes,
    batch: WebhookBatch,
    channels: Mapping[str, Channel],
    now: datetime,
    *,
    one_by_one: bool,
) -> Stored:
    stored = Stored()

    async def item(work: Callable[[], Awaitable[T]]) -> T | None:
        if not one_by_one:
            return await work()
        try:
            async with conn.begin_nested():
                return await work()
        except UNSTORABLE as exc:
            stored.refused += 1
            log.warning("left out a webhook item the database refuses: %s", exc.orig)
            return None

    await status_store.store_webhook(
        conn, raw_body=raw, inbound=len(batch.inbound), statuses=len(batch.statuses), now=now
    )
    for message in batch.inbound:
        channel = channels.get(message.phone_number_id)
        if channel is None:
            continue
        if await item(_recorder(conn, channel, message, now)):
            stored.received.append((channel, message))
    # One customer's events are queued in the order they wrote (Meta may batch them otherwise).
    events = [stored.received]
    if one_by_one:
        events = [[one] for one in sorted(stored.received, key=lambda cm: cm[1].timestamp)]
    for some in events:
        await item(_enqueuer(conn, some, now))
    reports = status_store.reports_from(batch.statuses, channels)
    groups: list[list[Report]] = [reports]
    if one_by_one:
        # A message's reports stay together: they are put in lifecycle order as a set.
        by_wamid: dict[str, list[Report]] = defaultdict(list)
        for report in reports:
            by_wamid[report.wamid].append(report)
        groups = list(by_wamid.values())
    for group in groups:
        stored.changes.extend(await item(_applier(conn, group, now)) or [])
    return stored


def _recorder(
    conn: AsyncConnection, channel: Channel, message: InboundMessage, now: datetime
) -> Callable[[], Awaitable[bool]]:
    async def record() -> bool:
        return await status_store.record_inbound(conn, channel=channel, message=message, now=now)

    return record


def _enqueuer(
    conn: AsyncConnection, received: list[tuple[Channel, InboundMessage]], now: datetime
) -> Callable[[], Awaitable[int]]:
    async def enqueue() -> int:
        return await callback_store.enqueue_inbound_events(conn, received, now=now)

    return enqueue


def _applier(
    conn: AsyncConnection, reports: list[Report], now: datetime
) -> Callable[[], Awaitable[list[StatusChange]]]:
    async def apply() -> list[StatusChange]:
        return await status_store.apply_reports(conn, reports, now=now)

    return apply
