"""Webhook payloads in Meta's exact shape: the envelope, status objects, inbound messages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

from wagate.sandbox.config import SandboxConfig
from wagate.sandbox.state import DueStatus

DAY = 86_400
ERROR_CODES_HREF = "/documentation/business-messaging/whatsapp/support/error-codes"


def new_wamid(wa_id: str) -> str:
    """A message id shaped like Meta's: `wamid.` and base64 of the recipient and random bytes."""
    raw = (
        b"\x1c\x18\x0b" + wa_id.encode()[:15] + b"\x15\x02\x00\x11\x18\x12" + secrets.token_bytes(9)
    )
    return "wamid." + base64.b64encode(raw).decode()


def sign(app_secret: str, raw: bytes) -> str:
    """The `X-Hub-Signature-256` header value Meta sends with a webhook."""
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def dumps(payload: dict[str, Any]) -> str:
    """JSON as Meta sends it: compact, non-ASCII escaped (`\\uXXXX`)."""
    return json.dumps(payload, separators=(",", ":"))


def metadata(config: SandboxConfig) -> dict[str, str]:
    return {
        "display_phone_number": config.display_phone_number,
        "phone_number_id": config.phone_number_id,
    }


def envelope(config: SandboxConfig, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": config.waba_id, "changes": [{"value": value, "field": "messages"}]}],
    }


def status_value(config: SandboxConfig, statuses: list[dict[str, Any]]) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "metadata": metadata(config), "statuses": statuses}


def status_object(due: DueStatus, timestamp: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": due.wamid,
        "status": due.status,
        "timestamp": str(timestamp),
        "recipient_id": due.wa_id,
    }
    if due.status in ("sent", "delivered") and due.billing is not None:
        out["conversation"] = due.billing["conversation"]
        out["pricing"] = due.billing["pricing"]
    if due.status == "failed" and due.error is not None:
        out["errors"] = [due.error]
    return out


def billing(
    phone_number_id: str, wa_id: str, *, template: bool, window_start: float | None, now: float
) -> dict[str, Any]:
    """The `conversation` and `pricing` objects of a `sent`/`delivered` status (per-message
    pricing: a free-form reply, or a utility template sent inside the customer service window,
    is free; a template outside it is billed)."""
    in_window = window_start is not None and now < window_start + DAY
    start = window_start if in_window and window_start is not None else now
    origin = "utility" if template else "service"
    conversation_id = hashlib.md5(
        f"{phone_number_id}:{wa_id}:{origin}:{int(start)}".encode(), usedforsecurity=False
    ).hexdigest()
    billable = template and not in_window
    return {
        "conversation": {
            "id": conversation_id,
            "expiration_timestamp": str(int(start) + DAY),
            "origin": {"type": origin},
        },
        "pricing": {
            "billable": billable,
            "pricing_model": "PMP",
            "type": "regular" if billable else "free_customer_service",
            "category": origin,
        },
    }


def status_error(code: int, title: str, details: str) -> dict[str, Any]:
    """One entry of a failed status' `errors`, as Meta writes it."""
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details},
        "href": ERROR_CODES_HREF,
    }


def reengagement_error() -> dict[str, Any]:
    return status_error(
        131047,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
    )


def inbound_value(
    config: SandboxConfig, wa_id: str, name: str, message: dict[str, Any]
) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": metadata(config),
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [message],
    }
