"""`/webhooks/whatsapp`: Meta's verification handshake and its signed event POSTs.

A POST is accepted only with a valid `X-Hub-Signature-256` for a channel's app secret. The raw
body and all its effects (windows opened, statuses moved) are committed in one transaction
before the 200, so a send right after the 200 already sees the open window, and a crash before
it makes Meta retry rather than lose the event.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from wagate import metrics
from wagate.api.body import read_limited
from wagate.api.deps import ServicesDep
from wagate.cloud.webhooks import WebhookParseError, parse_webhook, verify_signature
from wagate.domain.errors import InvalidBody, WagateError
from wagate.domain.models import InboundMessage
from wagate.store import accounts as account_store
from wagate.store import callbacks as callback_store
from wagate.store import statuses as status_store
from wagate.store.db import write_tx

log = logging.getLogger("wagate.webhooks")
router = APIRouter(tags=["webhooks"])

# Meta batches up to 1,000 updates in one POST.
MAX_WEBHOOK_BODY = 8 * 1024 * 1024


class InvalidSignature(WagateError):
    """The X-Hub-Signature-256 header is missing or does not match any channel's app secret."""

    code = "invalid_signature"
    http_status = 401


class VerificationFailed(WagateError):
    """hub.verify_token does not match any channel's verify token."""

    code = "verification_failed"
    http_status = 403


@router.get(
    "/webhooks/whatsapp",
    response_class=PlainTextResponse,
    summary="Meta's webhook verification handshake",
)
async def verify(
    services: ServicesDep,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    verify_token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge")] = None,
) -> PlainTextResponse:
    if mode != "subscribe" or not verify_token or challenge is None:
        raise VerificationFailed("Expected hub.mode=subscribe, hub.verify_token and hub.challenge.")
    async with services.engine.connect() as conn:
        matches = await account_store.channels_by_verify_token(conn, verify_token)
    if not matches:
        raise VerificationFailed()
    return PlainTextResponse(challenge)


@router.post("/webhooks/whatsapp", summary="Events from Meta (signed)")
async def receive(request: Request, services: ServicesDep) -> JSONResponse:
    raw = await read_limited(request, MAX_WEBHOOK_BODY)
    signature = request.headers.get("x-hub-signature-256")
    if not signature:
        metrics.record_webhook("invalid_signature")
        raise InvalidSignature("The X-Hub-Signature-256 header is missing.")
    async with services.engine.connect() as conn:
        channels = await account_store.list_channels(conn)
    secrets = {c.app_secret for c in channels if verify_signature(c.app_secret, raw, signature)}
    if not secrets:
        metrics.record_webhook("invalid_signature")
        raise InvalidSignature()
    try:
        payload: Any = json.loads(raw)
        batch = parse_webhook(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, WebhookParseError) as exc:
        metrics.record_webhook("invalid_body")
        raise InvalidBody(f"Not a WhatsApp webhook: {exc}") from None
    # Effects only for numbers whose app secret signed this body.
    by_number = {c.phone_number_id: c for c in channels if c.app_secret in secrets}
    now = services.clock.now()
    received: list[tuple[account_store.Channel, InboundMessage]] = []
    async with write_tx(services.engine) as conn:
        await status_store.store_webhook(
            conn,
            raw_body=raw,
            inbound=len(batch.inbound),
            statuses=len(batch.statuses),
            now=now,
        )
        for message in batch.inbound:
            channel = by_number.get(message.phone_number_id)
            if channel is not None and await status_store.record_inbound(
                conn, channel=channel, message=message, now=now
            ):
                received.append((channel, message))
        await callback_store.enqueue_inbound_events(conn, received, now=now)
        changes = await status_store.apply_reports(
            conn,
            status_store.reports_from(u for u in batch.statuses if u.phone_number_id in by_number),
            now=now,
        )
    metrics.record_webhook(
        "accepted",
        metrics.lags_since(
            [m.timestamp for m in batch.inbound] + [u.timestamp for u in batch.statuses], now
        ),
    )
    return JSONResponse({"success": True, "inbound": len(received), "statuses": len(changes)})
