"""`/webhooks/whatsapp[/{channel_id}]`: Meta's verification handshake and its signed event POSTs.

A POST is accepted only with a valid `X-Hub-Signature-256` for a channel's app secret, and its
effects reach only the numbers (`metadata.phone_number_id`) of channels whose app secret signed
it: the app secret is the unit of trust, so channels of one Meta app (one secret) may report for
each other, and no other channel's messages or conversations are touched. The raw body and all
its effects are committed in one transaction before the 200, so a send right after the 200
already sees the open window, and a crash before it makes Meta retry rather than lose the event.

What an unsigned or badly signed POST costs is bounded (`wagate.cloud.webhook_guard`): without
a well-formed signature header it is refused before its body is read; a body over 8 MiB or with
more than Meta's 1,000 updates is refused (413) before it is parsed; and it costs one HMAC on a
channel's own path (`/webhooks/whatsapp/{channel_id}`), at most `MAX_SECRETS` on the shared one
(whose candidates are the channels the body names), never one per channel.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from wagate import metrics
from wagate.api.body import parse_json, read_body
from wagate.api.deps import Services, ServicesDep
from wagate.api.schemas import ErrorResponse
from wagate.cloud.webhook_guard import (
    MAX_UPDATES,
    candidate_numbers,
    candidate_wabas,
    signature_digest,
    signed_by,
    updates_bound,
)
from wagate.cloud.webhooks import WebhookParseError, parse_webhook
from wagate.domain.errors import InvalidBody, PayloadTooLarge, WagateError
from wagate.store import accounts as account_store
from wagate.store.accounts import Channel
from wagate.store.webhook_batches import store_batch

log = logging.getLogger("wagate.webhooks")
router = APIRouter(tags=["webhooks"])

# Meta batches up to 1,000 updates in one POST; the body limit (8 MiB) is in BodyLimit's table
# (api/body_limit.py).
WEBHOOK_JSON_DEPTH = 32


class InvalidSignature(WagateError):
    """The X-Hub-Signature-256 header is missing or does not match any channel's app secret."""

    code = "invalid_signature"
    http_status = 401


class VerificationFailed(WagateError):
    """hub.verify_token does not match any channel's verify token."""

    code = "verification_failed"
    http_status = 403


class WebhookAccepted(BaseModel):
    success: bool = True
    inbound: int
    statuses: int


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


_POST_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Not a WhatsApp webhook: not JSON, nested too deep, or not Meta's shape"),
    401: _error("X-Hub-Signature-256 is missing or matches no channel's app secret"),
    413: _error("Body over 8 MiB, or more than 1,000 updates"),
    503: _error("Storage unavailable; nothing was stored (Meta retries)"),
}
# The handshake answers text/plain; its refusal, JSON in the documented shape.
_GET_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {
        "description": "hub.mode, hub.verify_token or hub.challenge missing or wrong",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    },
}

ModeQuery = Annotated[str | None, Query(alias="hub.mode")]
TokenQuery = Annotated[str | None, Query(alias="hub.verify_token")]
ChallengeQuery = Annotated[str | None, Query(alias="hub.challenge")]


def _handshake(mode: str | None, verify_token: str | None, challenge: str | None) -> str:
    if mode != "subscribe" or not verify_token or challenge is None:
        raise VerificationFailed("Expected hub.mode=subscribe, hub.verify_token and hub.challenge.")
    return verify_token


@router.get(
    "/webhooks/whatsapp",
    response_class=PlainTextResponse,
    responses=_GET_ERRORS,
    summary="Meta's webhook verification handshake (any channel's verify token)",
)
async def verify(
    services: ServicesDep,
    mode: ModeQuery = None,
    verify_token: TokenQuery = None,
    challenge: ChallengeQuery = None,
) -> PlainTextResponse:
    token = _handshake(mode, verify_token, challenge)
    async with services.engine.connect() as conn:
        matches = await account_store.channels_by_verify_token(conn, token)
    if not matches:
        raise VerificationFailed()
    return PlainTextResponse(challenge)


@router.get(
    "/webhooks/whatsapp/{channel_id}",
    response_class=PlainTextResponse,
    responses=_GET_ERRORS,
    summary="Meta's webhook verification handshake for one channel",
)
async def verify_for_channel(
    channel_id: str,
    services: ServicesDep,
    mode: ModeQuery = None,
    verify_token: TokenQuery = None,
    challenge: ChallengeQuery = None,
) -> PlainTextResponse:
    token = _handshake(mode, verify_token, challenge)
    async with services.engine.connect() as conn:
        channel = await account_store.get_channel(conn, channel_id=channel_id[:64])
    if channel is None or not hmac.compare_digest(
        channel.verify_token.encode(), token.encode("utf-8", "replace")
    ):
        raise VerificationFailed("hub.verify_token does not match this channel's verify token.")
    return PlainTextResponse(challenge)


@router.post(
    "/webhooks/whatsapp",
    response_model=WebhookAccepted,
    responses=_POST_ERRORS,
    summary="Events from Meta, signed with a channel's app secret",
)
async def receive(request: Request, services: ServicesDep) -> JSONResponse:
    digest = _signature(request)
    raw = await _body(request)
    numbers = candidate_numbers(raw)
    # A body that names no number (a field other than `messages`) names its WABA.
    wabas = candidate_wabas(raw) if not numbers else []
    async with services.engine.connect() as conn:
        candidates = await account_store.channels_named(
            conn, phone_number_ids=numbers, waba_ids=wabas
        )
    secrets = await signed_by((c.app_secret for c in candidates), raw, digest)
    return await _accept(services, raw, secrets, candidates)


@router.post(
    "/webhooks/whatsapp/{channel_id}",
    response_model=WebhookAccepted,
    responses=_POST_ERRORS,
    summary="Events from Meta for one channel's app: one signature check per request",
)
async def receive_for_channel(
    channel_id: str, request: Request, services: ServicesDep
) -> JSONResponse:
    digest = _signature(request)
    raw = await _body(request)
    async with services.engine.connect() as conn:
        channel = await account_store.get_channel(conn, channel_id=channel_id[:64])
    secrets = await signed_by([channel.app_secret] if channel else [], raw, digest)
    return await _accept(services, raw, secrets, [channel] if channel else [])


def _signature(request: Request) -> str:
    digest = signature_digest(request.headers.get("x-hub-signature-256"))
    if digest is None:
        metrics.record_webhook("invalid_signature")
        raise InvalidSignature(
            "The X-Hub-Signature-256 header is missing or is not sha256=<64 hex digits>."
        )
    return digest


async def _body(request: Request) -> bytes:
    try:
        raw = await read_body(request)
    except PayloadTooLarge:
        metrics.record_webhook("too_large")
        raise
    if updates_bound(raw) > MAX_UPDATES:
        metrics.record_webhook("too_large")
        raise PayloadTooLarge(
            f"The batch holds more than {MAX_UPDATES:,} messages and statuses; Meta sends at "
            f"most {MAX_UPDATES:,} in one POST."
        )
    return raw


async def _accept(
    services: Services, raw: bytes, secrets: set[str], looked_up: Sequence[Channel]
) -> JSONResponse:
    """`looked_up`: the channels already read to check the signature; read again only when
    the parsed body names a number they do not cover (the raw scan is a bounded guess)."""
    if not secrets:
        metrics.record_webhook("invalid_signature")
        raise InvalidSignature()
    try:
        batch = parse_webhook(parse_json(raw, limit=WEBHOOK_JSON_DEPTH))
    except (InvalidBody, WebhookParseError) as exc:
        metrics.record_webhook("invalid_body")
        raise InvalidBody(f"Not a WhatsApp webhook: {exc}") from None
    if len(batch.inbound) + len(batch.statuses) > MAX_UPDATES:
        metrics.record_webhook("too_large")
        raise PayloadTooLarge(f"The batch holds more than {MAX_UPDATES:,} updates.")
    # Effects only for numbers whose app secret signed this body.
    named = [c for c in looked_up if c.phone_number_id in batch.phone_number_ids]
    if len({c.phone_number_id for c in named}) < len(batch.phone_number_ids):
        async with services.engine.connect() as conn:
            named = await account_store.channels_named(
                conn, phone_number_ids=sorted(batch.phone_number_ids)
            )
    channels = {c.phone_number_id: c for c in named if c.app_secret in secrets}
    now = services.clock.now()
    stored = await store_batch(services.engine, raw=raw, batch=batch, channels=channels, now=now)
    metrics.record_webhook(
        "accepted",
        metrics.lags_since(
            [m.timestamp for m in batch.inbound] + [u.timestamp for u in batch.statuses], now
        ),
    )
    return JSONResponse(
        {"success": True, "inbound": len(stored.received), "statuses": len(stored.changes)}
    )
