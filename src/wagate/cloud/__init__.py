"""Meta's WhatsApp Cloud API: send bodies, the HTTP client, and webhook signatures and parsing."""

from wagate.cloud.client import (
    DEFAULT_GRAPH_URL,
    GRAPH_API_VERSION,
    CloudApiError,
    CloudClient,
    SendResult,
)
from wagate.cloud.payloads import build_message_payload
from wagate.cloud.webhooks import (
    WebhookBatch,
    WebhookParseError,
    parse_webhook,
    sign,
    verify_signature,
)

__all__ = [
    "DEFAULT_GRAPH_URL",
    "GRAPH_API_VERSION",
    "CloudApiError",
    "CloudClient",
    "SendResult",
    "WebhookBatch",
    "WebhookParseError",
    "build_message_payload",
    "parse_webhook",
    "sign",
    "verify_signature",
]
