"""Meta's payload for each SPEC §8 kind, from the stored `MessageContent.data` (pure).

    list:              "interactive": {"type": "list", "header"?: {"type": "text", "text"},
                        "body": {"text"}, "footer"?: {"text"},
                        "action": {"button": ..., "sections": [{"title"?, "rows": [{"id",
                        "title", "description"?}]}]}}
    cta:               "interactive": {"type": "cta_url", "header"?, "body", "footer"?,
                        "action": {"name": "cta_url", "parameters": {"display_text", "url"}}}
    location_request:  "interactive": {"type": "location_request_message", "body": {"text"},
                        "action": {"name": "send_location"}}
    location:          "location": {"latitude", "longitude", "name"?, "address"?}
    contacts:          "contacts": [ContactObject, ...]
    reaction:          "reaction": {"message_id": <wamid>, "emoji"}   (never a `context`)
    read:              {"messaging_product": "whatsapp", "status": "read", "message_id",
                        "typing_indicator"?: {"type": "text"}}   (the whole body; no `to`)

Each builder returns `(type, sub-object)`; `build_message_payload` adds the envelope.
`KIND_PAYLOADS` maps a `MessageType` to its builder; the media kind adds itself there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wagate.cloud.media_payload import media_payload
from wagate.domain.models import MessageContent, MessageType

# (content, the wamid its reply_to resolved to) → (Meta's `type`, the sub-object)
KindPayload = Callable[[MessageContent, str | None], tuple[str, Any]]


def _data(content: MessageContent) -> dict[str, Any]:
    if content.data is None:
        raise ValueError(f"a {content.type.value} message needs its data")
    return content.data


def _interactive(content: MessageContent, kind: str, action: dict[str, Any]) -> dict[str, Any]:
    interactive: dict[str, Any] = {"type": kind}
    if content.header:
        interactive["header"] = {"type": "text", "text": content.header}
    interactive["body"] = {"text": content.body}
    if content.footer:
        interactive["footer"] = {"text": content.footer}
    interactive["action"] = action
    return interactive


def list_payload(content: MessageContent, _: str | None) -> tuple[str, Any]:
    data = _data(content)
    sections = [
        {
            **({"title": s["title"]} if s.get("title") else {}),
            "rows": [dict(row) for row in s["rows"]],
        }
        for s in data["sections"]
    ]
    action = {"button": data["button"], "sections": sections}
    return "interactive", _interactive(content, "list", action)


def cta_payload(content: MessageContent, _: str | None) -> tuple[str, Any]:
    data = _data(content)
    action = {
        "name": "cta_url",
        "parameters": {"display_text": data["button"], "url": data["url"]},
    }
    return "interactive", _interactive(content, "cta_url", action)


def location_request_payload(content: MessageContent, _: str | None) -> tuple[str, Any]:
    interactive = {
        "type": "location_request_message",
        "body": {"text": content.body},
        "action": {"name": "send_location"},
    }
    return "interactive", interactive


def location_payload(content: MessageContent, _: str | None) -> tuple[str, Any]:
    data = _data(content)
    location = {"latitude": data["latitude"], "longitude": data["longitude"]}
    for key in ("name", "address"):
        if data.get(key):
            location[key] = data[key]
    return "location", location


def contacts_payload(content: MessageContent, _: str | None) -> tuple[str, Any]:
    return "contacts", [dict(card) for card in _data(content)["contacts"]]


def reaction_payload(content: MessageContent, target_wamid: str | None) -> tuple[str, Any]:
    data = _data(content)
    target = target_wamid or data.get("message_id")
    if not target or str(target).startswith("msg_"):
        raise ValueError("a reaction needs the wamid of the message it is on")
    return "reaction", {"message_id": target, "emoji": data["emoji"]}


def read_payload(content: MessageContent) -> dict[str, Any]:
    """The whole body of a read receipt (it is not a `Message`)."""
    data = _data(content)
    if not data.get("message_id"):
        raise ValueError("a read receipt needs the wamid of the message it marks read")
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": data["message_id"],
    }
    if data.get("typing"):
        payload["typing_indicator"] = {"type": "text"}
    return payload


KIND_PAYLOADS: dict[MessageType, KindPayload] = {
    MessageType.LIST: list_payload,
    MessageType.CTA: cta_payload,
    MessageType.LOCATION_REQUEST: location_request_payload,
    MessageType.LOCATION: location_payload,
    MessageType.CONTACTS: contacts_payload,
    MessageType.REACTION: reaction_payload,
    MessageType.MEDIA: media_payload,
}
# Kinds whose reply_to names the message they act on, not a message to quote.
NO_CONTEXT = frozenset({MessageType.REACTION})
