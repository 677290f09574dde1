"""Meta's status reports and the customers' messages: applied once, only ever forward."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.domain.failures import error_slug
from wagate.domain.models import InboundMessage, MetaError, Status, StatusUpdate
from wagate.domain.status import advances
from wagate.store.accounts import Channel
from wagate.store.sql import insert_ignore
from wagate.store.tables import (
    conversations,
    inbound_messages,
    message_events,
    messages,
    pending_statuses,
    webhook_events,
)


async def store_webhook(
    conn: AsyncConnection, *, raw_body: bytes, inbound: int, statuses: int, now: datetime
) -> None:
    await conn.execute(
        webhook_events.insert().values(
            received_at=now,
            body=raw_body.decode("utf-8", errors="replace"),
            inbound_count=inbound,
            status_count=statuses,
        )
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
            "sent_at": message.timestamp,
            "received_at": now,
        },
        ["channel_id", "wamid"],
    )
    if not new:
        return False
    # The window counts from when the customer sent the message, and only a newer message can
    # move it: a late webhook for an old message must not reopen a closed window.
    current = await conn.execute(
        select(conversations.c.last_inbound_at).where(
            conversations.c.channel_id == channel.id, conversations.c.phone == message.phone
        )
    )
    last = current.scalar_one_or_none()
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


async def apply_status(
    conn: AsyncConnection,
    *,
    wamid: str,
    status: Status,
    occurred_at: datetime,
    errors: Iterable[MetaError],
    now: datetime,
) -> bool:
    """Record one status report. An unknown wamid is parked until our send is recorded.
    Returns whether the message's status moved."""
    errors = list(errors)
    result = await conn.execute(
        select(messages.c.id, messages.c.status).where(messages.c.wamid == wamid)
    )
    row = result.first()
    if row is None:
        await insert_ignore(
            conn,
            pending_statuses,
            {
                "wamid": wamid,
                "status": status.value,
                "occurred_at": occurred_at,
                "errors": [
                    {"code": e.code, "title": e.title, "details": e.details} for e in errors
                ],
                "received_at": now,
            },
            ["wamid", "status"],
        )
        return False
    return await _apply_to_message(
        conn,
        message_id=row.id,
        current=Status(row.status),
        status=status,
        occurred_at=occurred_at,
        errors=errors,
        now=now,
    )


async def _apply_to_message(
    conn: AsyncConnection,
    *,
    message_id: str,
    current: Status,
    status: Status,
    occurred_at: datetime,
    errors: list[MetaError],
    now: datetime,
) -> bool:
    first = errors[0] if errors else None
    new_event = await insert_ignore(
        conn,
        message_events,
        {
            "message_id": message_id,
            "status": status.value,
            "occurred_at": occurred_at,
            "recorded_at": now,
            "meta_code": first.code if first else None,
            "error_title": first.title if first else None,
            "error_details": first.details if first else None,
        },
        ["message_id", "status"],
    )
    if not new_event or not advances(current, status):
        return False
    values: dict[str, Any] = {"status": status.value, "updated_at": now}
    if status is Status.FAILED:
        values.update(
            error_code=error_slug(first.code if first else None),
            meta_code=first.code if first else None,
            error_title=first.title if first else "Failed",
            error_details=first.details if first else "",
        )
    # The WHERE on the current status makes a concurrent, older report lose the race harmlessly.
    await conn.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.status == current.value)
        .values(**values)
    )
    return True


async def apply_pending_statuses(
    conn: AsyncConnection, *, message_id: str, wamid: str, current: Status, now: datetime
) -> Status:
    """Apply reports that arrived before we recorded the wamid; returns the resulting status."""
    result = await conn.execute(select(pending_statuses).where(pending_statuses.c.wamid == wamid))
    parked = list(result.mappings())
    if not parked:
        return current
    for report in sorted(parked, key=lambda r: r["occurred_at"]):
        status = Status(report["status"])
        raw_errors = report["errors"]
        if isinstance(raw_errors, str):
            raw_errors = json.loads(raw_errors)
        errors = [
            MetaError(e.get("code"), e.get("title", ""), e.get("details", "")) for e in raw_errors
        ]
        if await _apply_to_message(
            conn,
            message_id=message_id,
            current=current,
            status=status,
            occurred_at=report["occurred_at"],
            errors=errors,
            now=now,
        ):
            current = status
    await conn.execute(delete(pending_statuses).where(pending_statuses.c.wamid == wamid))
    return current


async def apply_status_update(conn: AsyncConnection, update_: StatusUpdate, now: datetime) -> bool:
    return await apply_status(
        conn,
        wamid=update_.wamid,
        status=update_.status,
        occurred_at=update_.timestamp,
        errors=update_.errors,
        now=now,
    )
