"""Messages: accepting one (message + outbox row in one transaction) and reading them back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wagate.domain.models import MessageType, Status
from wagate.domain.status import lifecycle_rank
from wagate.domain.window import window_expires_at, window_open
from wagate.store import media as media_store
from wagate.store.accounts import Channel
from wagate.store.tables import (
    conversations,
    inbound_messages,
    message_events,
    messages,
)


async def last_inbound_at(conn: AsyncConnection, *, channel_id: str, phone: str) -> datetime | None:
    result = await conn.execute(
        select(conversations.c.last_inbound_at).where(
            conversations.c.channel_id == channel_id, conversations.c.phone == phone
        )
    )
    return result.scalar_one_or_none()


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def message_view(row: Any, events: list[Any] | None = None) -> dict[str, Any]:
    """A message as the API shows it."""
    error = None
    if row["status"] == Status.FAILED.value:
        error = {
            "code": row["error_code"],
            "meta_code": row["meta_code"],
            "title": row["error_title"],
            "details": row["error_details"],
        }
    content = row["content"]
    out: dict[str, Any] = {
        "id": row["id"],
        "status": row["status"],
        "type": row["type"],
        "phone": row["phone"],
        "channel_id": row["channel_id"],
        "message": content.get("body"),
        "wamid": row["wamid"],
        "error": error,
        "reply_to": row["reply_to"],
        "metadata": row["metadata"],
        "attempts": row["attempts"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
    if row["type"] in (MessageType.INTERACTIVE.value, MessageType.TEMPLATE.value):
        out["header"] = content.get("header")
        out["footer"] = content.get("footer")
        out["buttons"] = content.get("buttons", [])
    if content.get("data") is not None:
        # A SPEC §8 kind's own fields (list sections, a CTA's url, a location, ...).
        out["content"] = content["data"]
        if content.get("header") or content.get("footer"):
            out["header"] = content.get("header")
            out["footer"] = content.get("footer")
    if row["type"] == MessageType.TEMPLATE.value and content.get("template"):
        out["template"] = {k: content["template"][k] for k in ("name", "language")}
    elif row["type"] == MessageType.TEXT.value:
        out["preview_url"] = content.get("preview_url", False)
    if events is not None:
        ordered = sorted(events, key=lambda e: (lifecycle_rank(Status(e["status"])), e["id"]))
        out["history"] = [
            {
                "status": e["status"],
                "at": iso(e["occurred_at"]),
                "recorded_at": iso(e["recorded_at"]),
                **(
                    {
                        "error": {
                            "meta_code": e["meta_code"],
                            "title": e["error_title"],
                            "details": e["error_details"],
                        }
                    }
                    if e["meta_code"] is not None or e["error_title"]
                    else {}
                ),
            }
            for e in ordered
        ]
    return out


async def get_message(
    conn: AsyncConnection, *, account_id: str, message_id: str
) -> dict[str, Any] | None:
    result = await conn.execute(
        select(messages).where(messages.c.id == message_id, messages.c.account_id == account_id)
    )
    row = result.mappings().first()
    if row is None:
        return None
    events = await conn.execute(
        select(message_events).where(message_events.c.message_id == message_id)
    )
    return message_view(row, list(events.mappings()))


async def list_messages(
    conn: AsyncConnection,
    *,
    account_id: str,
    phone: str | None,
    status: str | None,
    limit: int,
    before_id: str | None,
    after_id: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; returns the page and the cursor of the next page (None at the end).
    Ids start with their creation time, so `before_id`/`after_id` also bound by date."""
    conditions = [messages.c.account_id == account_id]
    if phone:
        conditions.append(messages.c.phone == phone)
    if status:
        conditions.append(messages.c.status == status)
    if before_id:
        conditions.append(messages.c.id < before_id)
    if after_id:
        conditions.append(messages.c.id >= after_id)
    result = await conn.execute(
        select(messages).where(and_(*conditions)).order_by(messages.c.id.desc()).limit(limit + 1)
    )
    rows = list(result.mappings())
    page = [message_view(r) for r in rows[:limit]]
    next_cursor = rows[limit - 1]["id"] if len(rows) > limit else None
    return page, next_cursor


async def conversation(
    conn: AsyncConnection,
    *,
    account_id: str,
    channel: Channel,
    phone: str,
    now: datetime,
    limit: int,
) -> dict[str, Any]:
    last_inbound = await last_inbound_at(conn, channel_id=channel.id, phone=phone)
    out_rows = await conn.execute(
        select(messages)
        .where(
            messages.c.account_id == account_id,
            messages.c.channel_id == channel.id,
            messages.c.phone == phone,
        )
        .order_by(messages.c.id.desc())
        .limit(limit)
    )
    in_rows = await conn.execute(
        select(inbound_messages)
        .where(inbound_messages.c.channel_id == channel.id, inbound_messages.c.phone == phone)
        .order_by(inbound_messages.c.sent_at.desc(), inbound_messages.c.id.desc())
        .limit(limit)
    )
    thread: list[dict[str, Any]] = []
    for r in out_rows.mappings():
        view = message_view(r)
        view["direction"] = "outbound"
        view["at"] = view["created_at"]
        thread.append(view)
    inbound = list(in_rows.mappings())
    files = await media_store.inbound_media(
        conn, channel_ids=[channel.id], wamids=[r["wamid"] for r in inbound]
    )
    for r in inbound:
        view = {
            "direction": "inbound",
            "wamid": r["wamid"],
            "kind": r["kind"],
            "text": r["text"],
            "button_id": r["button_id"],
            "button_payload": r["button_payload"],
            "context_wamid": r["context_wamid"],
            "content": r["content"],
            "at": iso(r["sent_at"]),
            "received_at": iso(r["received_at"]),
        }
        kept = files.get((channel.id, r["wamid"]))
        if kept is not None:
            view["media"] = kept.view()
        thread.append(view)
    thread.sort(key=lambda m: m["at"] or "", reverse=True)
    # A customer's reaction names our message by its wamid: our id for it, even off the page.
    aimed = {
        m["context_wamid"] for m in thread if m.get("kind") == "reaction" and m.get("context_wamid")
    }
    ours: dict[str, str] = {}
    if aimed:
        found = await conn.execute(
            select(messages.c.wamid, messages.c.id).where(
                messages.c.account_id == account_id, messages.c.wamid.in_(aimed)
            )
        )
        ours = {r.wamid: r.id for r in found}
    attach_reactions(thread, ours)
    expires = window_expires_at(last_inbound)
    return {
        "phone": phone,
        "channel_id": channel.id,
        "window_open": window_open(last_inbound, now),
        "last_inbound_at": iso(last_inbound),
        "window_expires_at": iso(expires),
        "messages": thread[:limit],
    }


def attach_reactions(thread: list[dict[str, Any]], ours: dict[str, str] | None = None) -> None:
    """Show each reaction on the message it is on: a reaction names its target in
    `reacts_to` (our msg_… id, or the customer's wamid), and the target gets `reactions`, the
    latest emoji of each side (`{"customer": "👍", "business": null}`; an emoji of "" is a
    removed reaction). `thread` is newest first; targets outside it are left alone. `ours`
    maps our messages' wamids to their ids (for `reacts_to`)."""
    by_wamid = {m["wamid"]: m for m in thread if m.get("wamid")}
    by_id = {m["id"]: m for m in thread if m.get("id")}
    for item in reversed(thread):  # oldest first: the latest reaction of a side wins
        if item["direction"] == "inbound" and item.get("kind") == "reaction":
            target = by_wamid.get(item.get("context_wamid"))
            aimed_at = item.get("context_wamid")
            on_page = target.get("id") if target else None
            item["reacts_to"] = on_page or (ours or {}).get(aimed_at) or aimed_at
            side, emoji = "customer", item.get("text") or ""
        elif item["direction"] == "outbound" and item.get("type") == MessageType.REACTION.value:
            data = item.get("content") or {}
            aimed = data.get("message_id")
            target = by_id.get(aimed) or by_wamid.get(aimed)
            item["reacts_to"] = aimed
            side, emoji = "business", data.get("emoji") or ""
        else:
            continue
        if target is not None:
            reactions = target.setdefault("reactions", {"customer": None, "business": None})
            reactions[side] = emoji or None
