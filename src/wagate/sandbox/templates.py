"""The sandbox's approved message templates, as `GET /{waba_id}/message_templates` lists them."""

from __future__ import annotations

from typing import Any

TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "hello_world",
        "parameter_format": "POSITIONAL",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
            {
                "type": "BODY",
                "text": "Welcome and congratulations!! This message demonstrates your ability to "
                "send a WhatsApp message notification from the Cloud API, hosted by Meta. Thank "
                "you for taking the time to test with us.",
            },
            {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
        ],
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "id": "900000000000001",
    },
    {
        "name": "order_confirmation",
        "parameter_format": "NAMED",
        "components": [
            {
                "type": "HEADER",
                "format": "TEXT",
                "text": "Order {{1}}",
                "example": {"header_text": ["#4521"]},
            },
            {
                "type": "BODY",
                "text": "Hi {{first_name}}, your order {{order_number}} is confirmed. We will "
                "let you know when it ships.",
                "example": {
                    "body_text_named_params": [
                        {"param_name": "first_name", "example": "Asha"},
                        {"param_name": "order_number", "example": "4521"},
                    ]
                },
            },
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Track order"},
                    {
                        "type": "URL",
                        "text": "View order",
                        "url": "https://shop.example.com/orders/{{1}}",
                        "example": ["https://shop.example.com/orders/4521"],
                    },
                ],
            },
        ],
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "id": "900000000000002",
    },
    {
        "name": "appointment_reminder",
        "parameter_format": "POSITIONAL",
        "components": [
            {
                "type": "BODY",
                "text": "Hello {{1}}, this is a reminder of your appointment on {{2}}. "
                "Reply to confirm or reschedule.",
                "example": {"body_text": [["Asha", "26 November at 10:00"]]},
            },
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Confirm"},
                    {"type": "QUICK_REPLY", "text": "Reschedule"},
                ],
            },
        ],
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "id": "900000000000003",
    },
]


def template_page(base_url: str, after: str | None, limit: int) -> dict[str, Any]:
    """One page of templates with Meta's cursor paging (the cursor is the index, as a string)."""
    start = int(after) if after is not None and after.isdigit() else 0
    page = TEMPLATES[start : start + limit]
    out: dict[str, Any] = {"data": page}
    if page:
        cursors = {"before": str(start), "after": str(start + len(page))}
        out["paging"] = {"cursors": cursors}
        if start + len(page) < len(TEMPLATES):
            out["paging"]["next"] = f"{base_url}?limit={limit}&after={start + len(page)}"
    return out
