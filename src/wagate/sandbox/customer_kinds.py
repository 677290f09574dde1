"""What the sandbox's customer can send besides text and taps (`POST /sandbox/reply` with one
of these keys; `wagate sandbox reply --location`, `--reaction`, `--contacts`, ...), built as
Meta's webhook message objects (the `Message` part of Meta's `WebhookPayload`):

    location     {"latitude", "longitude", "name"?, "address"?}
    reaction     {"emoji", "message_id"?}     message_id: a wamid (default: the business's
                 last message to this customer); emoji "" removes the reaction
    contacts     [ContactObject, ...]          1 to 5 cards, each with name.formatted_name
    order        {"catalog_id"?, "text"?, "product_items"?}
    system       {"body"?, "wa_id"?}          the customer changed their number
    unsupported  true                          a message type Meta does not support

Each builder returns `(record, fields)`: what the sandbox keeps for its phone view, and the
message object's fields besides from/id/timestamp. Bad input raises `CustomerKindError`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import emoji as emoji_data

Built = tuple[dict[str, Any], dict[str, Any]]
# (the value given, the last wamid the business sent this customer) -> Built
Builder = Callable[[Any, str | None], Built]


class CustomerKindError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _bad(key: str, message: str) -> CustomerKindError:
    return CustomerKindError(key, message)


def _coordinate(value: object, key: str, limit: float) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not -limit <= value <= limit
    ):
        raise _bad("location", f"location.{key} must be a number from -{limit:g} to {limit:g}.")
    return float(value)


def location(value: Any, _: str | None) -> Built:
    if not isinstance(value, dict):
        raise _bad("location", 'location must be {"latitude": …, "longitude": …}.')
    lat = _coordinate(value.get("latitude"), "latitude", 90)
    lon = _coordinate(value.get("longitude"), "longitude", 180)
    place: dict[str, Any] = {"latitude": lat, "longitude": lon}
    for key in ("name", "address"):
        text = value.get(key)
        if text is not None and not isinstance(text, str):
            raise _bad("location", f"location.{key} must be a string.")
        # Meta's webhook schema has both; a pin without a name comes with empty ones.
        place[key] = text or ""
    shown = place["name"] or place["address"] or f"{lat:g},{lon:g}"
    return {"type": "location", "text": shown, "location": place}, {
        "type": "location",
        "location": place,
    }


def reaction(value: Any, last_wamid: str | None) -> Built:
    if not isinstance(value, dict):
        raise _bad("reaction", 'reaction must be {"emoji": "👍", "message_id": "wamid…"}.')
    emoji = value.get("emoji")
    if not isinstance(emoji, str) or (emoji and not emoji_data.is_emoji(emoji)):
        raise _bad("reaction", 'reaction.emoji must be one emoji, or "" to remove it.')
    target = value.get("message_id") or last_wamid
    if not isinstance(target, str) or not target:
        raise _bad(
            "reaction",
            "reaction.message_id is needed: the business has sent this customer nothing yet.",
        )
    body = {"message_id": target, "emoji": emoji}
    return {"type": "reaction", "text": emoji, "reaction": body}, {
        "type": "reaction",
        "reaction": body,
    }


def contacts(value: Any, _: str | None) -> Built:
    if not isinstance(value, list) or not 1 <= len(value) <= 5:
        raise _bad("contacts", "contacts must be an array of 1 to 5 contact cards.")
    names = []
    for i, card in enumerate(value):
        name = card.get("name") if isinstance(card, dict) else None
        formatted = name.get("formatted_name") if isinstance(name, dict) else None
        if not isinstance(formatted, str) or not formatted.strip():
            raise _bad("contacts", f"contacts[{i}].name.formatted_name is required.")
        names.append(formatted)
    return {"type": "contacts", "text": ", ".join(names), "contacts": value}, {
        "type": "contacts",
        "contacts": value,
    }


def order(value: Any, _: str | None) -> Built:
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise _bad("order", "order must be an object (or true for a sample order).")
    items = value.get("product_items") or [
        {"product_retailer_id": "sku-1", "quantity": 1, "item_price": 10.0, "currency": "USD"}
    ]
    body = {
        "catalog_id": str(value.get("catalog_id") or "sandbox-catalog"),
        "text": str(value.get("text") or ""),
        "product_items": items,
    }
    return {"type": "order", "text": body["text"] or None, "order": body}, {
        "type": "order",
        "order": body,
    }


def system(value: Any, _: str | None) -> Built:
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise _bad("system", "system must be an object (or true).")
    body = {
        "body": str(value.get("body") or "The customer changed their phone number."),
        "type": "user_changed_number",
    }
    if value.get("wa_id"):
        body["wa_id"] = str(value["wa_id"]).lstrip("+")
    return {"type": "system", "text": body["body"], "system": body}, {
        "type": "system",
        "system": body,
    }


def unsupported(value: Any, _: str | None) -> Built:
    if value is not True:
        raise _bad("unsupported", "unsupported must be true.")
    errors = [
        {
            "code": 131051,
            "title": "Message type unknown",
            "message": "Message type unknown",
            "error_data": {"details": "Message type is currently not supported."},
        }
    ]
    return {"type": "unsupported", "text": None}, {"type": "unsupported", "errors": errors}


CUSTOMER_KINDS: dict[str, Builder] = {
    "location": location,
    "reaction": reaction,
    "contacts": contacts,
    "order": order,
    "system": system,
    "unsupported": unsupported,
}
# A system message comes without the customer's profile (Meta's IncomingMessageValueSystem).
WITHOUT_CONTACTS = frozenset({"system"})
