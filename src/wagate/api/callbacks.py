"""`/v1/callback` (the account's callback URL and signing secret) and `/v1/callbacks` (the
delivery log: list, read one, replay a dead letter)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from wagate.api.body import read_fields
from wagate.api.deps import AccountDep, ServicesDep
from wagate.api.schemas import ErrorResponse, error_responses
from wagate.domain.callbacks import SIGNATURE_HEADER, callback_url_problem
from wagate.domain.errors import FieldError, NotFound, ValidationFailed, WagateError
from wagate.domain.messages import FALSE_WORDS, TRUE_WORDS
from wagate.store import callback_log
from wagate.store.db import write_tx

router = APIRouter(prefix="/v1", tags=["callbacks"])


class CallbackPending(WagateError):
    """This delivery is still pending: it is retried on its own, so there is nothing to replay."""

    code = "callback_pending"
    http_status = 409


class CallbackConfig(BaseModel):
    callback_url: str | None = Field(description="Where events are POSTed; null: none are")
    callback_secret: str | None = Field(
        description="Signs every event (see signature_header); keep it secret"
    )
    signature_header: str = Field(
        SIGNATURE_HEADER, description='"t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">"'
    )


class CallbackConfigIn(BaseModel):
    url: str | None = Field(
        None,
        description="An http(s) URL for message.status and message.inbound events; null or "
        '"" removes it. May be left out when only rotating the secret.',
        examples=["https://example.com/wagate/events"],
    )
    rotate_secret: bool = Field(False, description="Replace the signing secret (the old stops)")


class CallbackDelivery(BaseModel):
    id: str = Field(description="The event's id (evt_…), also in the event body")
    type: str = Field(description="message.status or message.inbound")
    status: str = Field(description="pending, delivered or failed (given up: a dead letter)")
    message_id: str | None
    attempts: int
    created_at: str
    next_attempt_at: str | None = Field(description="When pending: the next try")
    delivered_at: str | None
    last_status_code: int | None = Field(description="The receiver's last HTTP status")
    last_error: str | None
    event: dict[str, Any] = Field(description="The exact JSON body that is POSTed")


class CallbackDeliveryPage(BaseModel):
    data: list[CallbackDelivery]
    next_cursor: str | None


def _config(settings: callback_log.CallbackSettings) -> dict[str, Any]:
    return {
        "callback_url": settings.callback_url,
        "callback_secret": settings.callback_secret,
        "signature_header": SIGNATURE_HEADER,
    }


def _wake_sender(request: Request) -> None:
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.callbacks.wake()


_CONFIG_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            # A URL to set (or null to stop), or a new secret: a body with neither means nothing.
            media: {
                "schema": CallbackConfigIn.model_json_schema()
                | {
                    "anyOf": [
                        {"required": ["url"]},
                        {
                            "required": ["rotate_secret"],
                            "properties": {"rotate_secret": {"const": True}},
                        },
                    ]
                }
            }
            for media in ("application/json", "application/x-www-form-urlencoded")
        },
    }
}


@router.get(
    "/callback",
    response_model=CallbackConfig,
    responses=error_responses(401, 429, 503),
    summary="The account's callback URL and signing secret",
)
async def get_callback(account_id: AccountDep, services: ServicesDep) -> Any:
    async with services.engine.connect() as conn:
        found = await callback_log.get_callback(conn, account_id=account_id)
    if found is None:  # the token's account was just deleted
        raise NotFound("This account no longer exists.")
    return _config(found)


@router.put(
    "/callback",
    response_model=CallbackConfig,
    responses=error_responses(400, 401, 413, 415, 422, 429, 503),
    summary="Set, clear or re-key the account's callback URL",
    openapi_extra=_CONFIG_BODY,
)
async def put_callback(request: Request, account_id: AccountDep, services: ServicesDep) -> Any:
    fields, form = await read_fields(request)
    url, keep_url, rotate = parse_config(fields, form=form)
    if url is not None and not keep_url:
        await services.egress.check_url(url, field="url")
    async with write_tx(services.engine) as conn:
        if keep_url:
            current = await callback_log.get_callback(conn, account_id=account_id)
            url = current.callback_url if current else None
        saved = await callback_log.set_callback(
            conn, account_id=account_id, url=url, rotate_secret=rotate
        )
    return _config(saved)


@router.delete(
    "/callback",
    response_model=CallbackConfig,
    responses=error_responses(401, 429, 503),
    summary="Stop callbacks (the secret is kept for when a URL is set again)",
)
async def delete_callback(account_id: AccountDep, services: ServicesDep) -> Any:
    async with write_tx(services.engine) as conn:
        saved = await callback_log.set_callback(conn, account_id=account_id, url=None)
    return _config(saved)


def parse_config(fields: dict[str, Any], *, form: bool) -> tuple[str | None, bool, bool]:
    """(url, keep the current url, rotate the secret) from a PUT /v1/callback body."""
    errors: list[FieldError] = []
    rotate = fields.get("rotate_secret", False)
    if form and isinstance(rotate, str):  # the yes/no words of every form
        word = rotate.strip().lower()
        rotate = True if word in TRUE_WORDS else False if word in FALSE_WORDS else rotate
    if not isinstance(rotate, bool):
        errors.append(FieldError("rotate_secret", "invalid_field", "rotate_secret is true/false."))
        rotate = False
    keep = "url" not in fields
    if keep and not rotate:
        errors.append(
            FieldError(
                "url",
                "missing_field",
                'url is required: an http(s) URL, or null (or "") to stop callbacks.',
            )
        )
    url = fields.get("url")
    if url == "":
        url = None
    if url is not None and (problem := callback_url_problem(url)) is not None:
        errors.append(problem)
    if errors:
        raise ValidationFailed(errors)
    return url, keep, rotate


@router.get(
    "/callbacks",
    response_model=CallbackDeliveryPage,
    responses=error_responses(401, 422, 429, 503),
    summary="Callback deliveries, newest first (status=failed: the dead letters)",
)
async def list_callbacks(
    account_id: AccountDep,
    services: ServicesDep,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(description="next_cursor of the previous page", pattern=r"^[0-9]{0,18}$"),
    ] = None,
) -> Any:
    before = None
    cursor = cursor or None  # an empty field of a GET form means "not given"
    if cursor is not None:
        if not cursor.isdigit() or len(cursor) > 18:
            raise ValidationFailed(
                [FieldError("cursor", "invalid_field", "cursor is the next_cursor of a page.")]
            )
        before = int(cursor)
    async with services.engine.connect() as conn:
        page, next_cursor = await callback_log.list_deliveries(
            conn, account_id=account_id, status=status, limit=limit, cursor=before
        )
    return {"data": page, "next_cursor": next_cursor}


@router.get(
    "/callbacks/{delivery_id}",
    response_model=CallbackDelivery,
    responses=error_responses(401, 404, 429, 503),
    summary="One callback delivery and the event it carries",
)
async def get_callback_delivery(
    delivery_id: str, account_id: AccountDep, services: ServicesDep
) -> Any:
    async with services.engine.connect() as conn:
        found = await callback_log.get_delivery(
            conn, account_id=account_id, delivery_id=delivery_id
        )
    if found is None:
        raise NotFound(f"No callback delivery {delivery_id!r} for this account.", field="id")
    return found


@router.post(
    "/callbacks/{delivery_id}/replay",
    status_code=202,
    response_model=CallbackDelivery,
    responses={
        **error_responses(401, 404, 429, 503),
        409: {"model": ErrorResponse, "description": "The delivery is still pending"},
    },
    summary="Send a failed (dead) or delivered event again, now",
)
async def replay_callback(
    delivery_id: str, request: Request, account_id: AccountDep, services: ServicesDep
) -> Any:
    try:
        async with write_tx(services.engine) as conn:
            replayed = await callback_log.replay(
                conn, account_id=account_id, delivery_id=delivery_id, now=services.clock.now()
            )
    except callback_log.DeliveryPending as pending:
        at = pending.delivery["next_attempt_at"]
        raise CallbackPending(
            f"Delivery {delivery_id} is still pending (next attempt at {at}; "
            f"{pending.delivery['attempts']} made so far) and is retried on its own; replay "
            "it once it has failed."
        ) from None
    if replayed is None:
        raise NotFound(f"No callback delivery {delivery_id!r} for this account.", field="id")
    _wake_sender(request)
    return replayed
