"""A conversation's thread as bubbles of every kind, from what is stored.

Outbound messages are drawn from the Cloud API body the dispatcher sends for them
(`cloud.payloads.build_message_payload` on the stored content), inbound ones from
`inbound_messages.content` (Meta's inbound object). Reactions are put on the bubbles they react
to, and the files the thread shows are looked up in one query. Read receipts are not messages
anyone sees, so they are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from wagate.api.deps import Services
from wagate.cloud.payloads import build_message_payload
from wagate.dashboard import kinds, media_files, views
from wagate.domain.models import MessageContent, MessageType
from wagate.store.tables import messages

# Stands in for a wamid the payload builder needs but the page does not show.
_NO_WAMID = "wamid.dashboard"


async def stored_contents(
    services: Services, *, account_id: str, ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The stored content of each of the account's messages in `ids`."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = select(messages.c.id, messages.c.content).where(
        messages.c.account_id == account_id, messages.c.id.in_(wanted)
    )
    async with services.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {row.id: row.content for row in rows if isinstance(row.content, dict)}


def outbound_payload(phone: str, content: Mapping[str, Any]) -> dict[str, Any] | None:
    """The body Meta gets for a stored message, or None when it cannot be built (a kind this
    version cannot send, or a reaction, which is read from its own fields)."""
    try:
        message = MessageContent.from_dict(dict(content))
        if message.type in (MessageType.REACTION, MessageType.READ):
            return None
        payload = build_message_payload(
            to=phone.removeprefix("+") or phone, content=message, reply_to_wamid=None
        )
    except (ValueError, KeyError, TypeError):
        return None
    data = message.data or {}
    ours = data.get("media_id")
    part = payload.get(str(data.get("media_type")))
    if message.type is MessageType.MEDIA and isinstance(ours, str) and isinstance(part, dict):
        # Sent by our own id: the page shows our copy (the payload names Meta's id or ours).
        part["wagate_media_id"] = ours
    return payload


def outbound_bubble(
    view: Mapping[str, Any],
    content: Mapping[str, Any] | None,
    media: kinds.MediaLookup,
    *,
    payload: dict[str, Any] | None = None,
    mine: bool = True,
) -> views.Bubble | None:
    """One of the account's messages (`view` as `store.messages` shows it, `content` as
    stored, `payload` its Meta body when already built); None for a read receipt."""
    kind = view.get("type")
    if kind == MessageType.READ.value:
        return None
    if kind == MessageType.REACTION.value:
        data = (content or {}).get("data") or view.get("content") or {}
        return views.content_bubble(
            kinds.Reaction(str(data.get("message_id") or ""), str(data.get("emoji") or "")),
            **views.outbound_fields(view, mine=mine),
        )
    if payload is None and content:
        payload = outbound_payload(str(view.get("phone") or ""), content)
    if payload is None:
        return views.from_api_message(dict(view), mine=mine)
    return views.from_payload(view, payload, media, mine=mine)


async def bubbles(
    services: Services,
    *,
    account_id: str,
    phone: str,
    items: list[dict[str, Any]],
) -> list[views.Bubble]:
    """`items` (a conversation's entries, oldest first) drawn for the business."""
    outbound = [i for i in items if i.get("direction") != "inbound" and i.get("id")]
    contents = await stored_contents(
        services, account_id=account_id, ids=(str(i["id"]) for i in outbound)
    )
    payloads: dict[str, dict[str, Any] | None] = {}
    wanted: set[str] = set()
    for item in outbound:
        content = contents.get(str(item["id"]))
        payload = outbound_payload(phone, content) if content else None
        payloads[str(item["id"])] = payload
        wanted |= kinds.media_ids(payload)
    for item in items:
        if item.get("direction") == "inbound":
            wanted |= kinds.media_ids(item.get("content"))
    media = await media_files.describe(services, account_id=account_id, ids=wanted)
    drawn: list[views.Bubble] = []
    for item in items:
        bubble: views.Bubble | None
        if item.get("direction") == "inbound":
            content = item.get("content")
            if isinstance(content, dict) and content.get("type"):
                bubble = views.from_inbound_content(item, content, media)
            else:
                bubble = views.from_inbound(item)
        else:
            key = str(item.get("id"))
            bubble = outbound_bubble(item, contents.get(key), media, payload=payloads.get(key))
        if bubble is not None:
            drawn.append(bubble)
    return views.with_reactions(drawn)
