"""Build the JSON bodies wagate POSTs to Meta's `/{version}/{phone_number_id}/messages`.

The shapes follow Meta's Cloud API description exactly (the `Message` schema in
`business-messaging-api_v23.0.yaml`); the test suite validates every body built here against it.

    text:         {"messaging_product": "whatsapp", "recipient_type": "individual", "to": ...,
                   "type": "text", "text": {"body": ..., "preview_url": false}}
    interactive:  {..., "type": "interactive", "interactive": {"type": "button",
                   "header": {"type": "text", "text": ...}, "body": {"text": ...},
                   "footer": {"text": ...},
                   "action": {"buttons": [{"type": "reply", "reply": {"id": ..., "title": ...}}]}}}
    template:     {..., "type": "template", "template": {"name": ...,
                   "language": {"policy": "deterministic", "code": ...},
                   "components": [{"type": "header" | "body", "parameters": [...]},
                                  {"type": "button", "sub_type": "quick_reply" | "url",
                                   "index": "0", "parameters": [...]}]}}

plus `"context": {"message_id": <wamid>}` when the message quotes (replies to) another one.
The SPEC §8 kinds (list, cta, location, location_request, contacts, reaction, read) are built
by `cloud/kind_payloads.py` (`KIND_PAYLOADS`); a read receipt is its own body, not a Message.
Text is passed through untouched: WhatsApp formatting (`*bold*`, `_italic_`, ...) is Meta's job.
"""

from __future__ import annotations

from typing import Any

from wagate.cloud.kind_payloads import KIND_PAYLOADS, NO_CONTEXT, read_payload
from wagate.domain.models import MessageContent, MessageType

MESSAGING_PRODUCT = "whatsapp"


def build_message_payload(
    *, to: str, content: MessageContent, reply_to_wamid: str | None = None
) -> dict[str, Any]:
    """The Cloud API send body for a message of any kind (see `cloud/kind_payloads.py`).

    `to` is the recipient as Meta accepts it: digits, or `+` and digits (E.164); it is sent as
    given, so Meta echoes it back unchanged in the response's `contacts[0].input`.
    Raises ValueError for content Meta would refuse outright (an interactive message without
    buttons, a template message without its template, an empty recipient).
    """
    if content.type is MessageType.READ:
        return read_payload(content)
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
    elif content.type is MessageType.TEMPLATE:
        payload["type"] = "template"
        payload["template"] = _template(content)
    elif (kind := KIND_PAYLOADS.get(content.type)) is not None:
        meta_type, sub_object = kind(content, reply_to_wamid)
        payload["type"] = meta_type
        payload[meta_type] = sub_object
        if content.type in NO_CONTEXT:
            return payload
    else:
        raise ValueError(f"build_message_payload cannot build {content.type.value} messages")
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


def _template(content: MessageContent) -> dict[str, Any]:
    if content.template is None:
        raise ValueError("a template message needs its template (name, language, components)")
    template: dict[str, Any] = {
        "name": content.template.name,
        # "deterministic" is the only policy Meta has; saying so keeps older API versions happy.
        "language": {"policy": "deterministic", "code": content.template.language},
    }
    if content.template.components:
        template["components"] = [dict(c) for c in content.template.components]
    return template
