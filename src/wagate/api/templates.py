"""`/v1/templates` (list, sync from Meta) and `POST /v1/messages/template` (Send Template)."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from wagate.api.body import read_fields
from wagate.api.deps import AccountDep, Services, ServicesDep, services_of
from wagate.api.messages import (
    answer_accept,
    request_token,
    send_openapi,
    take_idempotency_header,
)
from wagate.api.request_log import note_account
from wagate.api.schemas import (
    SendMessageAccepted,
    TemplateList,
    TemplateSyncResult,
    error_responses,
)
from wagate.domain.errors import (
    InvalidToken,
    RateLimited,
    UpstreamError,
    ValidationFailed,
)
from wagate.domain.models import SendRequest
from wagate.domain.templates import build_template_send, lookup_keys
from wagate.store import accounts as account_store
from wagate.store import templates as template_store
from wagate.store.accepts import (
    AcceptRequest,
    channel_unavailable_error,
    unknown_channel_field,
)
from wagate.template_sync import fetch_channels, store_synced

router = APIRouter(prefix="/v1", tags=["templates"])


@router.post(
    "/messages/template",
    status_code=202,
    response_model=SendMessageAccepted,
    responses=error_responses(400, 401, 409, 413, 415, 422, 429, 503),
    summary="Send an approved template, inside or outside the customer service window",
    openapi_extra=send_openapi("SendTemplateBody"),
)
async def send_template(request: Request) -> JSONResponse:
    services = services_of(request)
    fields, form = await read_fields(request)
    token = request_token(request, fields)
    send = await _checked(services, token, fields, form, request)
    # The same path as POST /v1/messages (idempotency included): one group-committed
    # transaction; a template needs no open window.
    return await answer_accept(services, AcceptRequest(token, send))


async def _checked(
    services: Services,
    token: str,
    fields: dict[str, Any],
    form: bool,
    request: Request,
) -> SendRequest:
    """The request checked against the synced template: the token, the channel that will send
    and its templates of that name are read in one connection."""
    name, wanted = lookup_keys(fields)
    async with services.engine.connect() as conn:
        caller = await account_store.authenticate(conn, token=token, now=services.clock.now())
        if caller is None:
            raise InvalidToken()
        note_account(caller.account_id)
        channel = await account_store.channel_for_send(
            conn, account_id=caller.account_id, wanted=wanted
        )
        gone = services.acceptor.unavailable_channels
        if channel is not None and channel.id in gone and not wanted:
            # The default is the sandbox's, gone: the account's first channel that is not.
            found = await account_store.list_channels(conn, account_id=caller.account_id)
            channel = next((c for c in found if c.id not in gone), channel)
        candidates = []
        if channel is not None and name is not None:
            candidates = await template_store.templates_named(
                conn, channel_id=channel.id, name=name
            )
    channel_error = unknown_channel_field(wanted) if channel is None else None
    if channel is not None and channel.id in services.acceptor.unavailable_channels:
        # Its sandbox is gone: say so rather than that its templates are unknown.
        raise channel_unavailable_error(channel.id, channel.display_phone_number)
    try:
        take_idempotency_header(request, fields)
        return build_template_send(fields, candidates, form=form, channel_error=channel_error)
    except ValidationFailed:
        # A refused request counts against the account's API rate like any other; an accepted
        # one is counted by the acceptor.
        wait = services.rate_limiter.check(caller.account_id, caller.api_rate)
        if wait is not None:
            raise RateLimited(wait, api_rate=caller.api_rate) from None
        raise


@router.get(
    "/templates",
    response_model=TemplateList,
    responses=error_responses(401, 429, 503),
    summary="The account's templates as last synced from Meta",
)
async def list_templates(
    account_id: AccountDep,
    services: ServicesDep,
    name: Annotated[str | None, Query(max_length=512)] = None,
    status: Annotated[str | None, Query(max_length=32, description="e.g. APPROVED")] = None,
    language: Annotated[str | None, Query(max_length=16, description="e.g. en_US")] = None,
    channel: Annotated[str | None, Query(max_length=128, description="Channel id")] = None,
) -> Any:
    async with services.engine.connect() as conn:
        data = await template_store.list_templates(
            conn,
            account_id=account_id,
            name=name,
            status=status,
            language=language,
            channel_id=channel,
        )
    return {"data": data}


@router.post(
    "/templates/sync",
    response_model=TemplateSyncResult,
    responses=error_responses(401, 429, 502, 503),
    summary="Fetch every channel's templates from Meta and replace the synced copy",
)
async def sync_templates(request: Request, account_id: AccountDep, services: ServicesDep) -> Any:
    async with services.engine.connect() as conn:
        channels = await account_store.list_channels(conn, account_id=account_id)
    http: httpx.AsyncClient = request.app.state.cloud_http
    synced = await fetch_channels(
        channels, lambda _: http, version=services.settings.graph_api_version
    )
    failed = [s for s in synced if s.error is not None]
    if failed:
        # All or nothing: one channel's set stored and another's not would look like a sync.
        problems = "; ".join(s.problem() for s in failed)
        raise UpstreamError(f"{problems[0].upper()}{problems[1:]}. Nothing was changed.")
    await store_synced(services.engine, synced, now=services.clock.now())
    async with services.engine.connect() as conn:
        data = await template_store.list_templates(conn, account_id=account_id)
    return {"success": True, "channels": [s.summary() for s in synced], "data": data}
