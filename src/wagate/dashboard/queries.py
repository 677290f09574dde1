"""Reads and writes only the dashboard needs (the API's live in wagate.store)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate import secret_box
from wagate.dashboard.rules import ChannelForm
from wagate.domain.window import window_expires_at, window_open
from wagate.store.accounts import AlreadyExists, Channel, channel_from_row
from wagate.store.tables import channels, conversations, messages

RECENT_MESSAGES = 500
"""How far back the conversation list looks for customers the business wrote to."""


async def account_channel(
    conn: AsyncConnection, *, account_id: str, channel_id: str
) -> Channel | None:
    result = await conn.execute(
        select(channels).where(channels.c.id == channel_id, channels.c.account_id == account_id)
    )
    row = result.mappings().first()
    return channel_from_row(row) if row else None


async def update_channel(
    conn: AsyncConnection, *, account_id: str, channel_id: str, form: ChannelForm
) -> bool:
    """Save an edited channel; a secret left blank keeps its stored value. False when the
    account has no such channel."""
    taken = await conn.execute(
        select(channels.c.id).where(
            channels.c.phone_number_id == form.phone_number_id, channels.c.id != channel_id
        )
    )
    if taken.first() is not None:
        raise AlreadyExists(f"phone number id {form.phone_number_id} is already a channel")
    values: dict[str, Any] = {
        "phone_number_id": form.phone_number_id,
        "waba_id": form.waba_id,
        "display_phone_number": form.display_phone_number,
        "verify_token": form.verify_token,
        "graph_url": form.graph_url,
        "mps": form.mps,
    }
    if form.access_token:
        values["access_token"] = secret_box.seal(form.access_token)
    if form.app_secret:
        values["app_secret"] = secret_box.seal(form.app_secret)
    result = await conn.execute(
        update(channels)
        .where(
            channels.c.id == channel_id,
            channels.c.account_id == account_id,
            channels.c.is_sandbox.is_(False),
        )
        .values(**values)
    )
    return result.rowcount > 0


def id_time(message_id: str) -> datetime:
    """When a message was accepted, read from its id (see wagate.ids)."""
    millis = int(message_id.split("_", 1)[1][:12], 16)
    return datetime.fromtimestamp(millis / 1000, UTC)


@dataclass(frozen=True, slots=True)
class Recipient:
    phone: str
    channel_id: str
    profile_name: str | None
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None
    window_open: bool
    window_expires_at: datetime | None

    @property
    def last_activity(self) -> datetime:
        times = [t for t in (self.last_inbound_at, self.last_outbound_at) if t is not None]
        return max(times)


async def recipients(
    conn: AsyncConnection,
    *,
    account_id: str,
    now: datetime,
    channel_id: str | None = None,
    limit: int = 100,
) -> list[Recipient]:
    """Customers who wrote to the account, and those its recent messages went to, most recent
    activity first (two queries, each bounded however large the message log is)."""
    recent_query = select(messages.c.phone, messages.c.channel_id, messages.c.id).where(
        messages.c.account_id == account_id
    )
    if channel_id is not None:
        recent_query = recent_query.where(messages.c.channel_id == channel_id)
    recent = recent_query.order_by(messages.c.id.desc()).limit(RECENT_MESSAGES).subquery()
    written = (
        select(recent.c.phone, recent.c.channel_id, func.max(recent.c.id).label("last_id"))
        .group_by(recent.c.phone, recent.c.channel_id)
        .subquery()
    )
    outbound = await conn.execute(
        select(
            written.c.phone,
            written.c.channel_id,
            written.c.last_id,
            conversations.c.last_inbound_at,
            conversations.c.profile_name,
        ).outerjoin(
            conversations,
            and_(
                conversations.c.channel_id == written.c.channel_id,
                conversations.c.phone == written.c.phone,
            ),
        )
    )
    inbound_query = select(conversations).where(conversations.c.account_id == account_id)
    if channel_id is not None:
        inbound_query = inbound_query.where(conversations.c.channel_id == channel_id)
    inbound = await conn.execute(
        inbound_query.order_by(conversations.c.last_inbound_at.desc()).limit(limit)
    )
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for row in outbound.mappings():
        found[(row["channel_id"], row["phone"])] = {
            "last_inbound_at": row["last_inbound_at"],
            "profile_name": row["profile_name"],
            "last_outbound_at": id_time(row["last_id"]),
        }
    for row in inbound.mappings():
        entry = found.setdefault((row["channel_id"], row["phone"]), {"last_outbound_at": None})
        entry.update(last_inbound_at=row["last_inbound_at"], profile_name=row["profile_name"])
    people = [
        Recipient(
            phone=phone,
            channel_id=channel,
            profile_name=entry["profile_name"],
            last_inbound_at=entry["last_inbound_at"],
            last_outbound_at=entry["last_outbound_at"],
            window_open=window_open(entry["last_inbound_at"], now),
            window_expires_at=window_expires_at(entry["last_inbound_at"]),
        )
        for (channel, phone), entry in found.items()
    ]
    people.sort(key=lambda r: r.last_activity, reverse=True)
    return people[:limit]


async def sent_contents(
    conn: AsyncConnection, *, account_id: str, wamids: list[str]
) -> dict[str, dict[str, Any]]:
    """What the account sent, by Meta's message id (for drawing the sandbox's record of it)."""
    if not wamids:
        return {}
    result = await conn.execute(
        select(messages.c.wamid, messages.c.content).where(
            messages.c.account_id == account_id, messages.c.wamid.in_(wamids)
        )
    )
    return {row.wamid: row.content for row in result}
