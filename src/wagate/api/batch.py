"""`POST /v1/messages/batch` (SPEC §9): up to 1,000 sends in one request, each judged, stored and
answered on its own (207), through the same group-committed path as single sends.

Whole-request answers, as for any endpoint: 400 (not JSON, not an object), 401 (no token, a bad
token), 413 (over 8 MiB), 415 (not JSON), 422 (`messages` missing, not an array, empty or over
1,000; an `Idempotency-Key` header: keys belong to items), 503 (storage down: nothing stored).
Everything else is per item, in `results`: what the item's own endpoint would have answered.
Each item counts as one request against the account's API rate, in order: past the rate, items
are refused with `rate_limited` (and the answer carries `Retry-After`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from wagate.api.batch_kinds import BatchLookups, parse_item
from wagate.api.body import read_body
from wagate.api.deps import services_of
from wagate.api.messages import request_token
from wagate.api.schemas import BATCH_MAX_ITEMS, BatchResult, error_responses
from wagate.domain.errors import (
    FieldError,
    InvalidBody,
    InvalidToken,
    RateLimited,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
    WagateError,
)
from wagate.domain.models import SendRequest
from wagate.store.accepts import AcceptRequest, accepted_body
from wagate.store.idempotency import Replayed

router = APIRouter(prefix="/v1", tags=["messages"])

# The body limit of this endpoint (SPEC §9, 8 MiB) is in BodyLimit's table (api/body_limit.py).
# Parsing a thousand items takes tens of milliseconds: let other requests in between.
PARSE_SLICE = 100


def _responses() -> dict[int | str, dict[str, Any]]:
    responses = error_responses(400, 401, 413, 415, 422, 503)
    responses[413] = responses[413] | {"description": "Body over 8 MiB"}
    return responses


@router.post(
    "/messages/batch",
    status_code=207,
    response_model=BatchResult,
    responses=_responses(),
    summary="Send up to 1,000 messages at once; one result per item",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchBody"}}},
        }
    },
)
async def send_batch(request: Request) -> JSONResponse:
    services = services_of(request)
    body = await _read_json_object(request)
    if body.get("token") is not None and not isinstance(body["token"], str):
        raise ValidationFailed(
            [FieldError("token", "invalid_field", "token must be a string (or send it as "
                        "Authorization: Bearer <token>).")]
        )  # fmt: skip
    token = request_token(request, body)
    if "idempotency-key" in request.headers:
        raise ValidationFailed(
            [
                FieldError(
                    "Idempotency-Key",
                    "invalid_field",
                    "A batch has no key of its own: give each item its own idempotency_key.",
                )
            ]
        )
    items = _items(body)
    lookups = BatchLookups(services.engine, services.clock, token)
    parsed: list[SendRequest | WagateError] = []
    for index, item in enumerate(items):
        if index and index % PARSE_SLICE == 0:
            await asyncio.sleep(0)
        try:
            parsed.append(await parse_item(item, lookups))
        except (ValidationFailed, InvalidBody) as error:
            parsed.append(error)
    # A bad token outranks bad items, as for a single send; then every item, refused or not,
    # counts as one request against the account's API rate, in order.
    caller = await lookups.caller()
    for index in range(len(parsed)):
        wait = services.rate_limiter.check(caller.account_id, caller.api_rate)
        if wait is not None:
            parsed[index] = RateLimited(wait, api_rate=caller.api_rate)
    sends = [(i, p) for i, p in enumerate(parsed) if isinstance(p, SendRequest)]
    stored = await services.acceptor.accept_many(
        [AcceptRequest(token, p, rate_counted=True) for _, p in sends]
    )
    outcomes: list[Any] = list(parsed)
    for (index, _), outcome in zip(sends, stored, strict=True):
        outcomes[index] = outcome
    return _answer(outcomes, services.notify_queued)


async def _read_json_object(request: Request) -> dict[str, Any]:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    json_like = media.startswith("application/") and media.endswith("+json")
    if media != "application/json" and not json_like:
        raise UnsupportedMediaType(
            f"Content-Type {media or '(none)'} is not supported here; send application/json."
        )
    raw = await read_body(request)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidBody(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise InvalidBody('The JSON body must be an object: {"messages": [ … ]}.')
    return data


def _items(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages")
    problem = None
    if messages is None:
        problem = FieldError(
            "messages", "missing_field", 'messages is required: {"messages": [{"phone": …}, …]}.'
        )
    elif not isinstance(messages, list):
        problem = FieldError("messages", "invalid_field", "messages must be an array of sends.")
    elif not messages:
        problem = FieldError("messages", "empty_batch", "messages is empty; send 1 to 1,000.")
    elif len(messages) > BATCH_MAX_ITEMS:
        problem = FieldError(
            "messages",
            "too_many_messages",
            f"messages has {len(messages):,} items; a batch takes at most {BATCH_MAX_ITEMS:,}. "
            "Split it into several requests.",
        )
    if problem is not None:
        raise ValidationFailed([problem])
    assert isinstance(messages, list)
    return messages


def _answer(outcomes: list[Any], notify_queued: Any) -> JSONResponse:
    # The token is the same for every item: refused for one, refused for the request.
    if outcomes and all(isinstance(o, InvalidToken) for o in outcomes):
        raise InvalidToken()
    done = [o for o in outcomes if isinstance(o, dict | Replayed)]
    if not done and any(isinstance(o, ServiceUnavailable) for o in outcomes):
        raise ServiceUnavailable()  # nothing was stored: the whole request may be retried
    results: list[dict[str, Any]] = []
    waits = [o.retry_after for o in outcomes if isinstance(o, RateLimited)]
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, dict):
            result = {"index": index} | accepted_body(outcome) | {"replayed": False}
        elif isinstance(outcome, Replayed):
            result = {"index": index} | outcome.body | {"replayed": True}
        else:
            assert isinstance(outcome, WagateError)
            result = {
                "index": index,
                "success": False,
                "status_code": outcome.http_status,
                "error": outcome.body()["error"],
            }
        results.append(result)
    if any(isinstance(o, dict) for o in outcomes):
        notify_queued()
    accepted = len(done)
    body = {"accepted": accepted, "refused": len(outcomes) - accepted, "results": results}
    headers = {"Retry-After": str(max(1, round(max(waits))))} if waits else None
    return JSONResponse(body, status_code=207, headers=headers)
