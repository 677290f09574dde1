"""Build the JSON bodies wagate POSTs to Meta's `/{version}/{phone_number_id}/messages`.

The shapes follow Meta's Cloud API description exactly (the `Message` schema in
`business-messaging-api_v23.0.yaml`); the test suite validates every body built here against it.

    text:         {"messaging_product": "whatsapp", "recipient_type": "individual", "to": ...,
                   "type": "text", "text": {"body": ..., "preview_url": false}}
    interactive:  {..., "type": "interactive", "interactive": {"type": "button",
                   "header": {"type": "text", "text": ...}, "body": {"text": ...},
                   "footer": {"text": ...},
                   "action": {"buttons": [{"type": "reply", "reply": {"id": ..., "title": ...}}]}}}

plus `"context": {"message_id": <wamid>}` when the message quotes (replies to) another one.
Text is passed through untouched: WhatsApp formatting (`*bold*`, `_italic_`, ...) is Meta's job.
"""

from __future__ import annotations

from typing import Any

from wagate.domain.models import MessageContent, MessageType

MESSAGING_PRODUCT = "whatsapp"


def build_message_payload(
    *, to: str, content: MessageContent, reply_to_wamid: str | None = None
) -> dict[str, Any]:
    """The Cloud API send body for a free-form (text or interactive) message.

    `to` is the recipient as Meta accepts it: digits, or `+` and digits (E.164); it is sent as
    given, so Meta echoes it back unchanged in the response's `contacts[0].input`.
    Raises ValueError for content Meta would refuse outright (a template, which has its own
    builder; an interactive message without buttons; an empty recipient).
    """
    if not to:
        raise ValueError("a message needs a recipient (`to`)")
    payload: dict[str, Any] = {
        "messaging_product": MESSAGING_PRODUCT,
        "recipient_type": "individual",
        "to": to,
    }
    if content.type is MessageType.TEXT:
        payload["type"] = "text"
        payload["text"] = {"body": content.body, "preview_url": bool(content.preview_url)}
    elif content.type is MessageType.INTERACTIVE:
        payload["type"] = "interactive"
        payload["interactive"] = _reply_buttons(content)
    else:
        raise ValueError(
            f"build_message_payload builds text and interactive messages, not {content.type.value}"
        )
    if reply_to_wamid:
        payload["context"] = {"message_id": reply_to_wamid}
    return payload


def _reply_buttons(content: MessageContent) -> dict[str, Any]:
    if not content.buttons:
        raise ValueError("an interactive message needs at least one reply button")
    interactive: dict[str, Any] = {"type": "button"}
    if content.header:
        interactive["header"] = {"type": "text", "text": content.header}
    interactive["body"] = {"text": content.body}
    if content.footer:
        interactive["footer"] = {"text": content.footer}
    interactive["action"] = {
        "buttons": [
            {"type": "reply", "reply": {"id": button.id, "title": button.title}}
            for button in content.buttons
        ]
    }
    return interactive
