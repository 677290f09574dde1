"""`/v1/messages`: send, read one, list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from wagate.api.body import read_fields
from wagate.api.deps import (
    AccountDep,
    Services,
    ServicesDep,
    authenticate,
    bearer_token,
    services_of,
)
from wagate.api.request_log import note_account
from wagate.api.schemas import (
    MessageOut,
    MessagePage,
    SendMessageAccepted,
    error_responses,
)
from wagate.domain.errors import (
    FieldError,
    MissingToken,
    NotFound,
    ValidationFailed,
    WagateError,
)
from wagate.domain.messages import parse_send_request
from wagate.domain.models import Status
from wagate.domain.phone import normalize_phone
from wagate.store import messages as message_store
from wagate.store.accepts import AcceptRequest, accepted_body
from wagate.store.idempotency import Replayed

router = APIRouter(prefix="/v1", tags=["messages"])


IDEMPOTENCY_KEY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: a repeat with the same key and body within 24 hours "
    "gets the first answer (marked `Idempotent-Replayed: true`) and sends nothing; another "
    "body with the same key gets 409 idempotency_conflict. Same as the idempotency_key field.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def send_openapi(body_schema: str) -> dict[str, Any]:
    """The OpenAPI of a send endpoint: its body in each of the three encodings, and the
    Idempotency-Key header (the handlers read the raw body themselves)."""
    schema = {"$ref": f"#/components/schemas/{body_schema}"}
    media = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")
    return {
        "parameters": [IDEMPOTENCY_KEY_HEADER],
        "requestBody": {"required": True, "content": {m: {"schema": schema} for m in media}},
    }


def request_token(request: Request, fields: dict[str, Any]) -> str:
    """The API token from `Authorization: Bearer`, or else from the body's `token` field."""
    token = bearer_token(request)
    if token is None:
        body_token = fields.get("token")
        token = body_token if isinstance(body_token, str) and body_token else None
    if token is None:
        raise MissingToken()
    return token


@router.post(
    "/messages",
    status_code=202,
    response_model=SendMessageAccepted,
    responses=error_responses(400, 401, 409, 413, 415, 422, 429, 503),
    summary="Send a text or interactive message",
    openapi_extra=send_openapi("SendMessageBody"),
)
async def send_message(request: Request) -> JSONResponse:
    return await accept_send(request, services_of(request))


async def accept_send(request: Request, services: Services) -> JSONResponse:
    """The hot path (see `fastpath.py`): no dependencies to solve, one group-committed
    transaction shared with every other request waiting at the same moment."""
    fields, form = await read_fields(request)
    token = request_token(request, fields)
    try:
        take_idempotency_header(request, fields)
        send = parse_send_request(fields, form=form)
    except ValidationFailed:
        # A bad token outranks bad fields; checking it only here keeps the good path to one
        # transaction.
        await authenticate(services, token)
        raise
    return await answer_accept(services, AcceptRequest(token, send))


async def answer_accept(services: Services, item: AcceptRequest) -> JSONResponse:
    """Queue a validated send and answer it: 202 with the message, the first answer again for
    a repeated idempotency key (marked `Idempotent-Replayed: true`), or the refusal."""
    outcome = await services.acceptor.accept(item)
    if isinstance(outcome, WagateError):
        raise outcome
    if isinstance(outcome, Replayed):
        return JSONResponse(
            outcome.body,
            status_code=outcome.status_code,
            headers={"Idempotent-Replayed": "true"},
        )
    services.notify_queued()
    note_account(outcome["account_id"])
    return JSONResponse(accepted_body(outcome), status_code=202)


def take_idempotency_header(request: Request, fields: dict[str, Any]) -> None:
    """`Idempotency-Key` header and `idempotency_key` field are one setting: the header fills
    the field, and the two may not disagree."""
    header = request.headers.get("idempotency-key")
    if header is None:
        return
    given = fields.get("idempotency_key")
    if given not in (None, "") and given != header:
        raise ValidationFailed(
            [
                FieldError(
                    "idempotency_key",
                    "invalid_field",
                    "The Idempotency-Key header and the idempotency_key field differ; send "
                    "the key once, in either place.",
                )
            ]
        )
    fields["idempotency_key"] = header


@router.get(
    "/messages/{message_id}",
    response_model=MessageOut,
    response_model_exclude_unset=True,
    responses=error_responses(401, 404, 429, 503),
    summary="A message, its status and its status history",
)
async def get_message(message_id: str, account_id: AccountDep, services: ServicesDep) -> Any:
    async with services.engine.connect() as conn:
        message = await message_store.get_message(
            conn, account_id=account_id, message_id=message_id
        )
    if message is None:
        raise NotFound(f"No message {message_id!r} for this account.", field="id")
    return message


@router.get(
    "/messages",
    response_model=MessagePage,
    response_model_exclude_unset=True,
    responses=error_responses(401, 422, 429, 503),
    summary="Messages, newest first",
)
async def list_messages(
    account_id: AccountDep,
    services: ServicesDep,
    phone: Annotated[str | None, Query(description="E.164, e.g. +14155552671")] = None,
    status: Annotated[Status | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Any:
    # An empty field of a GET form means "not given".
    phone, cursor = phone or None, cursor or None
    if phone is not None:
        normalized, errors = normalize_phone(phone)
        if errors:
            raise ValidationFailed(errors)
        phone = normalized
    async with services.engine.connect() as conn:
        page, next_cursor = await message_store.list_messages(
            conn,
            account_id=account_id,
            phone=phone,
            status=status.value if status else None,
            limit=limit,
            before_id=cursor,
        )
    return {"data": page, "next_cursor": next_cursor}
