"""The SPEC §8 send endpoints (one per `wagate.domain.kinds.SEND_KINDS` entry) and
`POST /v1/conversations/{phone}/read`.

Each reads its body as Send Message does (JSON, form or multipart, 64 KiB), checks every field
before anything is queued, and hands the send to the one accept path (`answer_accept`: the
group commit, idempotency, the window rule, the outbox lanes). Kinds that point at another
message (reaction, read) look it up in the caller's account first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from wagate.api.body import read_fields
from wagate.api.deps import Services, authenticate, services_of
from wagate.api.messages import (
    answer_accept,
    request_token,
    send_openapi,
    take_idempotency_header,
)
from wagate.api.schemas import SendMessageAccepted, error_responses
from wagate.domain.errors import ValidationFailed
from wagate.domain.kinds import SEND_KINDS, Kind, parse_read, resolve_read
from wagate.domain.models import SendRequest
from wagate.store.accepts import AcceptRequest
from wagate.store.kind_targets import AccountTargets

router = APIRouter(prefix="/v1", tags=["messages"])


async def accept_kind(
    request: Request,
    services: Services,
    parse: Callable[..., SendRequest],
    fields: dict[str, Any],
    form: bool,
    resolve: Callable[[SendRequest, AccountTargets], Awaitable[SendRequest]] | None = None,
) -> JSONResponse:
    """Parse, resolve (when the kind points at another message) and accept one send."""
    token = request_token(request, fields)
    try:
        take_idempotency_header(request, fields)
        send = parse(fields, form=form)
    except ValidationFailed:
        await authenticate(services, token)  # a bad token outranks bad fields
        raise
    if resolve is None:
        return await answer_accept(services, AcceptRequest(token, send))
    account_id = await authenticate(services, token)  # counts against the API rate
    async with services.engine.connect() as conn:
        send = await resolve(send, AccountTargets(conn, account_id))
    return await answer_accept(services, AcceptRequest(token, send, rate_counted=True))


def _endpoint(kind: Kind) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def send_kind(request: Request) -> JSONResponse:
        services = services_of(request)
        fields, form = await read_fields(request)
        return await accept_kind(request, services, kind.parse, fields, form, kind.resolve)

    send_kind.__name__ = f"send_{kind.name}"
    return send_kind


for _kind in SEND_KINDS.values():
    router.add_api_route(
        _kind.path,
        _endpoint(_kind),
        methods=["POST"],
        status_code=202,
        response_model=SendMessageAccepted,
        responses=error_responses(400, 401, 409, 413, 415, 422, 429, 503),
        summary=_kind.summary,
        openapi_extra=send_openapi(_kind.body_schema),
        operation_id=f"send_{_kind.name}",
    )


async def _resolve_read(send: SendRequest, targets: AccountTargets) -> SendRequest:
    # A customer who never wrote to that number: left unresolved, the accept path refuses it
    # (unknown channel, or outside_service_window) as for any free-form message.
    return await resolve_read(send, targets) or send


@router.post(
    "/conversations/{phone}/read",
    status_code=202,
    response_model=SendMessageAccepted,
    responses=error_responses(400, 401, 409, 413, 415, 422, 429, 503),
    summary="Mark the customer's latest message read (blue ticks), optionally showing typing",
    openapi_extra=send_openapi("MarkReadBody"),
    operation_id="mark_read",
)
async def mark_read(phone: str, request: Request) -> JSONResponse:
    services = services_of(request)
    fields, form = await read_fields(request)
    fields["phone"] = phone
    return await accept_kind(request, services, parse_read, fields, form, _resolve_read)
