"""Meta-shaped messages of every kind, for tests of how they are drawn and stored.

`OUTBOUND`: send bodies (`Message` in Meta's description), `INBOUND`: inbound webhook message
objects without from/id/timestamp (what `inbound_messages.content` holds). Media objects carry
our `wagate_media_id` as the gateway adds it; `without_our_ids` takes it out again, and
`validate_send` / `webhook` + `validate_webhook` check them against Meta's schema.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from jsonschema import Draft202012Validator

from tests.support import meta_schema as ms
from wagate.dashboard.kinds import MediaFile

CUSTOMER = "14155552671"
OUR_WAMID = "wamid.HBgLMTQxNTU1NTI2NzEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
THEIR_WAMID = "wamid.HBgLMTQxNTU1NTI2NzEVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
MEDIA = {
    "med_photo": MediaFile("med_photo", "image/jpeg", 48_213, None),
    "med_clip": MediaFile("med_clip", "video/mp4", 2_400_000, None),
    "med_song": MediaFile("med_song", "audio/ogg", 18_000, None),
    "med_invoice": MediaFile("med_invoice", "application/pdf", 2_431_877, "invoice-4521.pdf"),
    "med_sticker": MediaFile("med_sticker", "image/webp", 31_000, None),
}


def send(kind: str, part: Any, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": kind,
    }
    body[kind] = part
    body.update(extra)
    return body


# --------------------------------------------------------------------------- outbound fixtures

OUTBOUND: dict[str, dict[str, Any]] = {
    "text": send("text", {"body": "Your order *4521* ships today.", "preview_url": False}),
    "buttons": send(
        "interactive",
        {
            "type": "button",
            "header": {"type": "image", "image": {"id": "1", "wagate_media_id": "med_photo"}},
            "body": {"text": "Does this look right?"},
            "footer": {"text": "Shop & Co"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "no", "title": "No"}},
                ]
            },
        },
    ),
    "list": send(
        "interactive",
        {
            "type": "list",
            "header": {"type": "text", "text": "Shipping"},
            "body": {"text": "How fast do you want it?"},
            "footer": {"text": "Prices include tax"},
            "action": {
                "button": "Choose speed",
                "sections": [
                    {
                        "title": "Standard",
                        "rows": [{"id": "std", "title": "Ground", "description": "3 to 5 days"}],
                    },
                    {
                        "title": "Fast",
                        "rows": [
                            {"id": "express", "title": "Express", "description": "Next day"},
                            {"id": "same_day", "title": "Same day"},
                        ],
                    },
                ],
            },
        },
    ),
    "cta": send(
        "interactive",
        {
            "type": "cta_url",
            "header": {"type": "text", "text": "Your receipt"},
            "body": {"text": "Tap to see your order."},
            "footer": {"text": "Valid 24 h"},
            "action": {
                "name": "cta_url",
                "parameters": {"display_text": "See order", "url": "https://shop.example/o/4521"},
            },
        },
    ),
    "location_request": send(
        "interactive",
        {
            "type": "location_request_message",
            "body": {"text": "Where should we deliver?"},
            "action": {"name": "send_location"},
        },
    ),
    "image": send(
        "image", {"id": "1001", "caption": "Your _new_ sofa", "wagate_media_id": "med_photo"}
    ),
    "image_by_link": send("image", {"link": "https://cdn.example/sofa.jpg"}),
    "video": send("video", {"id": "1002", "caption": "Assembly", "wagate_media_id": "med_clip"}),
    "audio": send("audio", {"id": "1003", "wagate_media_id": "med_song"}),
    "document": send(
        "document", {"id": "1004", "caption": "Invoice", "wagate_media_id": "med_invoice"}
    ),
    "document_by_link": send(
        "document", {"link": "https://cdn.example/terms.pdf", "filename": "terms.pdf"}
    ),
    "sticker": send("sticker", {"id": "1005", "wagate_media_id": "med_sticker"}),
    "location": send(
        "location",
        {
            "latitude": "51.50135",
            "longitude": "-0.14189",
            "name": "Buckingham Palace",
            "address": "London SW1A 1AA",
        },
    ),
    "contacts": send(
        "contacts",
        [
            {
                "name": {
                    "formatted_name": "Lucía Gómez",
                    "first_name": "Lucía",
                    "last_name": "Gómez",
                },
                "org": {"company": "Shop & Co", "title": "Support"},
                "phones": [{"phone": "+1 (983) 555-2319", "wa_id": "19835552319", "type": "WORK"}],
                "emails": [{"email": "lucia@shop.example", "type": "WORK"}],
                "urls": [{"url": "https://shop.example", "type": "WORK"}],
                "addresses": [{"street": "1 Main St", "city": "Springfield", "type": "WORK"}],
                "birthday": "1990-04-01",
            }
        ],
    ),
    "reaction": send("reaction", {"message_id": THEIR_WAMID, "emoji": "👍"}),
}

# Meta's documentation defines these interactive types, but its OpenAPI description's enum of
# `interactive.type` leaves them out. Their objects are checked against the documented shape
# below, and the rest of the body against the description (with a reply-button stand-in).
DOCUMENTED_ONLY = {
    "cta_url": {
        "type": "object",
        "required": ["type", "body", "action"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "cta_url"},
            "header": {"type": "object", "required": ["type"]},
            "body": {
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"maxLength": 1024}},
            },
            "footer": {
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"maxLength": 60}},
            },
            "action": {
                "type": "object",
                "required": ["name", "parameters"],
                "additionalProperties": False,
                "properties": {
                    "name": {"const": "cta_url"},
                    "parameters": {
                        "type": "object",
                        "required": ["display_text", "url"],
                        "additionalProperties": False,
                        "properties": {
                            "display_text": {"type": "string", "maxLength": 20},
                            "url": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
    "location_request_message": {
        "type": "object",
        "required": ["type", "body", "action"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "location_request_message"},
            "body": {
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"maxLength": 1024}},
            },
            "action": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {"name": {"const": "send_location"}},
            },
        },
    },
}
STAND_IN = {
    "type": "button",
    "body": {"text": "x"},
    "action": {"buttons": [{"type": "reply", "reply": {"id": "x", "title": "x"}}]},
}


def without_our_ids(node: Any) -> Any:
    """Meta's shape: the payload minus the `wagate_media_id` we add to media objects."""
    if isinstance(node, dict):
        return {k: without_our_ids(v) for k, v in node.items() if k != "wagate_media_id"}
    if isinstance(node, list):
        return [without_our_ids(v) for v in node]
    return node


def validate_send(payload: dict[str, Any]) -> None:
    body = without_our_ids(payload)
    interactive = body.get("interactive") or {}
    documented = DOCUMENTED_ONLY.get(interactive.get("type"))
    if documented is not None:
        Draft202012Validator(documented).validate(interactive)
        body = {**body, "interactive": STAND_IN}
    ms.validate_message(body)


# --------------------------------------------------------------------------- inbound fixtures

INBOUND: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": {"body": "Hi! Is it *in stock*?"}},
    "button_reply": {
        "type": "interactive",
        "context": {"from": "15550783881", "id": OUR_WAMID},
        "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}},
    },
    "list_reply": {
        "type": "interactive",
        "context": {"from": "15550783881", "id": OUR_WAMID},
        "interactive": {
            "type": "list_reply",
            "list_reply": {"id": "express", "title": "Express", "description": "Next day"},
        },
    },
    "button": {
        "type": "button",
        "context": {"from": "15550783881", "id": OUR_WAMID},
        "button": {"payload": "STOP_PROMOS", "text": "Stop promotions"},
    },
    "image": {
        "type": "image",
        "image": {
            "caption": "The scratch",
            "mime_type": "image/jpeg",
            "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
            "id": "1003383421387256",
            "wagate_media_id": "med_photo",
        },
    },
    "image_not_downloaded": {
        "type": "image",
        "image": {
            "mime_type": "image/jpeg",
            "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
            "id": "1003383421387257",
        },
    },
    "video": {
        "type": "video",
        "video": {
            "mime_type": "video/mp4",
            "sha256": "abc=",
            "id": "11",
            "wagate_media_id": "med_clip",
        },
    },
    "audio": {
        "type": "audio",
        "audio": {
            "mime_type": "audio/ogg",
            "sha256": "abc=",
            "id": "12",
            "voice": False,
            "wagate_media_id": "med_song",
        },
    },
    "voice": {
        "type": "audio",
        "audio": {
            "mime_type": "audio/ogg; codecs=opus",
            "sha256": "abc=",
            "id": "13",
            "voice": True,
            "wagate_media_id": "med_song",
        },
    },
    "document": {
        "type": "document",
        "document": {
            "filename": "invoice-4521.pdf",
            "mime_type": "application/pdf",
            "sha256": "abc=",
            "id": "14",
            "wagate_media_id": "med_invoice",
        },
    },
    "sticker": {
        "type": "sticker",
        "sticker": {
            "mime_type": "image/webp",
            "sha256": "abc=",
            "id": "15",
            "animated": False,
            "wagate_media_id": "med_sticker",
        },
    },
    "location": {
        "type": "location",
        "location": {
            "address": "101 Forest Ave, Palo Alto, CA 94301",
            "latitude": 37.44221496582,
            "longitude": -122.16165924072,
            "name": "Philz Coffee",
            "url": "https://philzcoffee.com/",
        },
    },
    "contacts": {
        "type": "contacts",
        "contacts": [
            {
                "name": {
                    "first_name": "Barbara",
                    "last_name": "Johnson",
                    "formatted_name": "Barbara J. Johnson",
                },
                "org": {"company": "Meta Inc"},
                "phones": [{"phone": "+14125550829", "wa_id": "14125550829"}],
                "emails": [{"email": "barbara@example.com", "type": "Work"}],
            }
        ],
    },
    "reaction": {"type": "reaction", "reaction": {"message_id": OUR_WAMID, "emoji": "❤️"}},
    "order": {
        "type": "order",
        "order": {
            "catalog_id": "194836987003835",
            "text": "",
            "product_items": [
                {
                    "product_retailer_id": "di9ozbzfi4",
                    "quantity": 2,
                    "item_price": 30,
                    "currency": "USD",
                },
                {
                    "product_retailer_id": "nqryix03ez",
                    "quantity": 1,
                    "item_price": 25.5,
                    "currency": "USD",
                },
            ],
        },
    },
    "system": {
        "type": "system",
        "system": {
            "body": "User Sheena Nelson changed from 16505551234 to 12195555358",
            "wa_id": "12195555358",
            "type": "user_changed_number",
        },
    },
    "unsupported": {
        "type": "unsupported",
        "errors": [
            {
                "code": 131051,
                "title": "Message type unknown",
                "message": "Message type unknown",
                "error_data": {"details": "Message type is currently not supported."},
            }
        ],
    },
}


def webhook(content: dict[str, Any]) -> dict[str, Any]:
    """The inbound content as Meta posts it: with from/id/timestamp, inside a webhook."""
    message = {"from": CUSTOMER, "id": THEIR_WAMID, "timestamp": "1749416383"}
    message.update(without_our_ids(content))
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "messages": [message],
    }
    if content["type"] != "system":  # Meta sends no contacts with a system message
        value["contacts"] = [{"profile": {"name": "Sheena Nelson"}, "wa_id": CUSTOMER}]
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


class Page(HTMLParser):
    """The drawn HTML read back: every element with its attributes, and the visible text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.words: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.words.append(" ".join(data.split()))

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    def loads(self) -> list[str]:
        """Everything the browser would fetch by itself (not links, which wait for a click)."""
        return [
            a[name]
            for t, a in self.elements
            for name in ("src", "poster", "data")
            if name in a and t != "a"
        ] + [a["href"] for t, a in self.elements if t == "link" and "href" in a]
