"""The `kind` of a customer's message: one name in `GET /v1/conversations/{phone}`, in the
`message.inbound` callback and in the dashboard (SPEC §8).

    text           a text message
    button_reply   a tap on one of our reply buttons (interactive button_reply)
    list_reply     a pick from one of our list menus (interactive list_reply)
    button         a tap on a template's quick-reply button
    image, video, audio, document, sticker
    voice          a voice note (Meta's `audio` with `voice: true`)
    location       a shared location
    contacts       shared contact cards
    reaction       an emoji reaction on a message (`reacts_to`); an empty emoji removes it
    order          an order from a catalog
    system         a system notice (e.g. the customer changed their number)
    unsupported    anything else Meta sends (`unsupported`, `unknown`, a Flow reply, ...)

The message itself is kept as Meta sent it (`content`: the webhook's message object without
`from`, `id` and `timestamp`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

INBOUND_KINDS = (
    "text",
    "button_reply",
    "list_reply",
    "button",
    "image",
    "video",
    "audio",
    "voice",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "order",
    "system",
    "unsupported",
)
MEDIA_KINDS = frozenset({"image", "video", "audio", "voice", "document", "sticker"})
_SAME = frozenset(INBOUND_KINDS) - {"button_reply", "list_reply", "voice", "unsupported"}
_INTERACTIVE = frozenset({"button_reply", "list_reply"})


def inbound_kind(item: Mapping[str, Any]) -> str:
    """The kind of a webhook message object (see the module's table)."""
    msg_type = item.get("type")
    if msg_type == "interactive":
        interactive = item.get("interactive")
        sub = interactive.get("type") if isinstance(interactive, Mapping) else None
        return sub if isinstance(sub, str) and sub in _INTERACTIVE else "unsupported"
    if msg_type == "audio":
        audio = item.get("audio")
        return "voice" if isinstance(audio, Mapping) and audio.get("voice") is True else "audio"
    if isinstance(msg_type, str) and msg_type in _SAME:
        return msg_type
    return "unsupported"


def inbound_content(item: Mapping[str, Any]) -> dict[str, Any]:
    """What `inbound_messages.content` keeps: the object without from/id/timestamp, its
    strings' NULs replaced (no database text takes them)."""
    kept = {k: v for k, v in item.items() if k not in ("from", "id", "timestamp")}
    cleaned = _clean(kept)
    assert isinstance(cleaned, dict)
    return cleaned


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, Mapping):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):  # NaN, Infinity: not JSON
        return None
    return value
