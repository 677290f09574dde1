"""A conversation's thread as bubbles of every kind, from what is stored.

Outbound messages are drawn from the Cloud API body the dispatcher sends for them
(`cloud.payloads.build_message_payload` on the stored content), inbound ones from
`inbound_messages.content` (Meta's inbound object). Reactions are put on the bubbles they react
to, and the files the thread shows are looked up in one query. Read receipts are not messages
anyone sees, so they are left out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from wagate.api.deps import Services
from wagate.cloud.payloads import build_message_payload
from wagate.dashboard import kinds, media_files, views
from wagate.domain.models import MessageContent, MessageType
from wagate.store.tables import inbound_messages, messages

# Stands in for a wamid the payload builder needs but the page does not show.
_NO_WAMID = "wamid.dashboard"


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


def content_from_view(view: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stored content of one of our messages, read back from its API view
    (`store.messages.message_view` shows every part of it: the kind's own fields are its
    `content`), so that drawing a thread costs no query of its own."""
    kind = view.get("type")
    if not isinstance(kind, str):
        return None
    content: dict[str, Any] = {"type": kind, "body": view.get("message") or ""}
    for key in ("header", "footer"):
        if view.get(key):
            content[key] = view[key]
    if view.get("buttons"):
        content["buttons"] = view["buttons"]
    if "preview_url" in view:
        content["preview_url"] = bool(view["preview_url"])
    if isinstance(view.get("content"), dict):
        content["data"] = view["content"]
    return content


def known_files(items: Iterable[Mapping[str, Any]]) -> dict[str, kinds.MediaFile]:
    """What the thread's own entries already say about their files: a customer's file as
    `store.messages.conversation` shows it (`media`), ours from the message's fields."""
    found: dict[str, kinds.MediaFile] = {}
    for item in items:
        shown = item.get("media")
        if isinstance(shown, dict) and isinstance(shown.get("id"), str):
            error = shown.get("error")
            found[shown["id"]] = kinds.MediaFile(
                shown["id"],
                mime_type=shown.get("mime_type"),
                size=shown.get("size"),
                filename=shown.get("filename"),
                state=str(shown.get("status") or "ready"),
                error=error.get("message") if isinstance(error, dict) else None,
            )
        data = item.get("content") if item.get("direction") != "inbound" else None
        if item.get("type") == MessageType.MEDIA.value and isinstance(data, dict):
            ours = data.get("media_id")
            if isinstance(ours, str) and ours:
                found[ours] = kinds.MediaFile(
                    ours,
                    mime_type=data.get("mime_type"),
                    size=data.get("size") if isinstance(data.get("size"), int) else None,
                    filename=data.get("filename"),
                )
    return found


async def bubbles(
    services: Services,
    *,
    account_id: str,
    phone: str,
    items: list[dict[str, Any]],
) -> list[views.Bubble]:
    """`items` (a conversation's entries, oldest first, or one message's view) drawn for the
    business."""
    payloads: dict[int, dict[str, Any] | None] = {}
    wanted: set[str] = set()
    for n, item in enumerate(items):
        if item.get("direction") == "inbound":
            wanted |= kinds.media_ids(item.get("content"))
            continue
        content = content_from_view(item)
        payloads[n] = outbound_payload(phone, content) if content else None
        wanted |= kinds.media_ids(payloads[n])
    media = known_files(items)
    missing = wanted - set(media)
    if missing:
        media |= await media_files.describe(services, account_id=account_id, ids=missing)
    drawn: list[views.Bubble] = []
    for n, item in enumerate(items):
        bubble: views.Bubble | None
        if item.get("direction") == "inbound":
            content = item.get("content")
            if isinstance(content, dict) and content.get("type"):
                bubble = views.from_inbound_content(item, content, media)
            else:
                bubble = views.from_inbound(item)
        else:
            stored = content_from_view(item)
            bubble = outbound_bubble(item, stored, media, payload=payloads.get(n))
        if bubble is not None:
            drawn.append(bubble)
    return views.with_quotes(views.with_reactions(drawn))


async def _phone_rows(
    services: Services, *, account_id: str, channel_id: str, wamids: list[str]
) -> tuple[dict[str, tuple[str, dict[str, Any]]], dict[str, dict[str, Any]]]:
    """By wamid: the account's messages (id, content) and the customer's (content)."""
    if not wamids:
        return {}, {}
    async with services.engine.connect() as conn:
        ours = await conn.execute(
            select(messages.c.wamid, messages.c.id, messages.c.content).where(
                messages.c.account_id == account_id, messages.c.wamid.in_(wamids)
            )
        )
        sent = {r.wamid: (r.id, r.content) for r in ours if isinstance(r.content, dict)}
        theirs = await conn.execute(
            select(inbound_messages.c.wamid, inbound_messages.c.content).where(
                inbound_messages.c.channel_id == channel_id, inbound_messages.c.wamid.in_(wamids)
            )
        )
        received = {r.wamid: r.content for r in theirs if isinstance(r.content, dict)}
    return sent, received


# What the sandbox's own record draws well enough (and makes tappable): the rest is drawn
# from the gateway's stored content.
_PLAIN_OUT = {MessageType.TEXT.value, MessageType.INTERACTIVE.value, MessageType.TEMPLATE.value}
_PLAIN_IN = {"text", "button"}


async def phone_bubbles(
    services: Services,
    *,
    account_id: str,
    channel_id: str,
    phone: str,
    record: list[dict[str, Any]],
) -> list[views.Bubble]:
    """The sandbox phone's chat (the sandbox's record of it, oldest first), seen by the
    customer: their messages on the right. Each kind is drawn from what the gateway stored for
    the same wamid, as on the conversation page; reply buttons and list rows can be tapped."""
    wamids = [str(m["wamid"]) for m in record if m.get("wamid")]
    sent, received = await _phone_rows(
        services, account_id=account_id, channel_id=channel_id, wamids=wamids
    )
    payloads = {w: outbound_payload(phone, content) for w, (_, content) in sent.items()}
    wanted: set[str] = set()
    for node in (*payloads.values(), *received.values()):
        wanted |= kinds.media_ids(node)
    media = await media_files.describe(services, account_id=account_id, ids=wanted)
    drawn: list[views.Bubble] = []
    for item in record:
        wamid = str(item.get("wamid") or "")
        shown: dict[str, Any] = {"wamid": wamid, "at": item.get("timestamp")}
        if item.get("direction") == "inbound":
            content = received.get(wamid)
            tapped_list = (
                content is not None
                and (content.get("interactive") or {}).get("type") == "list_reply"
            )
            if content and (content.get("type") not in _PLAIN_IN | {"interactive"} or tapped_list):
                drawn.append(views.from_inbound_content(shown, content, media, mine=True))
            else:
                drawn.append(views.from_sandbox(item))
            continue
        message_id, stored = sent.get(wamid, (None, None))
        kind = (stored or {}).get("type")
        shown |= {"status": item.get("status")}
        bubble: views.Bubble | None
        if stored is not None and kind not in _PLAIN_OUT:
            view = shown | {"type": kind, "phone": phone}
            bubble = outbound_bubble(view, stored, media, payload=payloads.get(wamid), mine=False)
        else:
            bubble = views.from_sandbox(
                item, stored if kind == MessageType.TEMPLATE.value else None
            )
        if bubble is not None:
            drawn.append(dataclasses.replace(bubble, message_id=message_id, link=None))
    return views.with_quotes(views.with_reactions(drawn))
