"""Pydantic models that describe the API in /openapi.json (bodies are parsed by the domain)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ButtonIn(BaseModel):
    id: str = Field(min_length=1, max_length=256, description="Returned to you when tapped")
    title: str = Field(min_length=1, max_length=20)


class SendMessageBody(BaseModel):
    token: str | None = Field(None, description="Or send `Authorization: Bearer <token>`")
    phone: str = Field(examples=["+14155552671"], description="`+`, country code and digits")
    message: str = Field(description="At most 4096 characters (1024 when interactive)")
    header: str | None = Field(None, max_length=60)
    footer: str | None = Field(None, max_length=60)
    buttons: list[ButtonIn] | None = Field(None, min_length=1, max_length=3)
    preview_url: bool = False
    reply_to: str | None = Field(None, description="A message id (msg_…) or wamid to quote")
    metadata: dict[str, Any] | None = Field(None, description="Echoed in callbacks")
    channel: str | None = Field(None, description="Channel id or phone number id")
    idempotency_key: str | None = None


class SendMessageAccepted(BaseModel):
    success: bool = True
    id: str
    status: str
    type: str
    phone: str
    window_expires_at: str | None


class ErrorItem(BaseModel):
    field: str
    code: str
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    errors: list[ErrorItem]


class ErrorResponse(BaseModel):
    success: bool = False
    error: ErrorDetail


class StatusEvent(BaseModel):
    status: str
    at: str | None
    recorded_at: str | None
    error: dict[str, Any] | None = None


class MessageError(BaseModel):
    code: str | None
    meta_code: int | None
    title: str | None
    details: str | None


class MessageOut(BaseModel):
    id: str
    status: str
    type: str
    phone: str
    channel_id: str
    message: str | None
    wamid: str | None
    error: MessageError | None
    reply_to: str | None
    metadata: dict[str, Any]
    attempts: int
    created_at: str | None
    updated_at: str | None
    header: str | None = None
    footer: str | None = None
    buttons: list[dict[str, str]] | None = None
    preview_url: bool | None = None
    template: dict[str, str] | None = Field(None, description="name and language")
    content: dict[str, Any] | None = Field(
        None,
        description="The kind's own fields (list: button, sections; cta: button, url; "
        "location: latitude, longitude, name, address; contacts: contacts; reaction: "
        "message_id, emoji; read: message_id, typing)",
    )
    history: list[StatusEvent] | None = None


class MessagePage(BaseModel):
    data: list[MessageOut]
    next_cursor: str | None


class Conversation(BaseModel):
    phone: str
    channel_id: str
    window_open: bool
    last_inbound_at: str | None
    window_expires_at: str | None
    messages: list[dict[str, Any]]


class TemplateButtonParam(BaseModel):
    index: int = Field(ge=0, le=9, description="The button's position in the template, from 0")
    payload: str | None = Field(
        None, max_length=256, description="A quick reply's payload, sent back when it is tapped"
    )
    text: str | None = Field(None, description="The end of a URL button's URL (its {{1}})")


class TemplateParams(BaseModel):
    header: list[str] | dict[str, Any] | None = Field(
        None,
        description='The value of a text header (["#4521"]), or for a media header '
        '{"image": {"link": "https://…"}} (or video, document)',
    )
    body: list[str] | dict[str, str] | None = Field(
        None, description="A list for {{1}}, {{2}}…; an object for named parameters"
    )
    buttons: list[TemplateButtonParam] | None = None


class SendTemplateBody(BaseModel):
    token: str | None = Field(None, description="Or send `Authorization: Bearer <token>`")
    phone: str = Field(examples=["+919876543210"], description="`+`, country code and digits")
    template: str = Field(examples=["order_confirmation"], description="An approved template")
    language: str | None = Field(
        None, examples=["en_US"], description="Required when the template has several languages"
    )
    params: TemplateParams | None = Field(
        None, description="In a form body, a JSON string; see GET /v1/templates example_params"
    )
    reply_to: str | None = Field(None, description="A message id (msg_…) or wamid to quote")
    metadata: dict[str, Any] | None = Field(None, description="Echoed in callbacks")
    channel: str | None = Field(None, description="Channel id or phone number id")
    idempotency_key: str | None = Field(None, description="Or the Idempotency-Key header")


class TemplateOut(BaseModel):
    id: str
    channel_id: str
    phone_number_id: str
    waba_id: str
    meta_id: str | None
    name: str
    language: str
    status: str = Field(description="Meta's: APPROVED, PENDING, REJECTED, PAUSED, DISABLED, …")
    category: str
    parameter_format: str = Field(description="POSITIONAL ({{1}}) or NAMED ({{first_name}})")
    components: list[dict[str, Any]] = Field(description="As Meta describes the template")
    example_params: dict[str, Any] | None = Field(
        description="A `params` object that fits, for POST /v1/messages/template"
    )
    synced_at: str | None


class TemplateList(BaseModel):
    data: list[TemplateOut]


class ChannelSyncOut(BaseModel):
    channel_id: str
    phone_number_id: str
    waba_id: str
    templates: int | None = Field(description="How many the channel has now")
    error: str | None


class TemplateSyncResult(BaseModel):
    success: bool = True
    channels: list[ChannelSyncOut]
    data: list[TemplateOut]


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Body is not JSON or a form, or not an object",
        401: "Missing, unknown or revoked token",
        404: "Not found for this account",
        409: "Outside the customer service window, or idempotency conflict",
        413: "Body over 64 KiB",
        415: "Unsupported Content-Type",
        422: "A field breaks a rule; every problem is listed",
        429: "Too many requests",
        502: "Meta's Graph API failed or could not be reached; nothing was changed",
        503: "Storage unavailable; nothing was accepted",
    }
    return {s: {"model": ErrorResponse, "description": descriptions[s]} for s in statuses}


BATCH_MAX_ITEMS = 1000


class BatchTextItem(BaseModel):
    """A Send Message body (text, or interactive with a header, footer or buttons)."""

    kind: Literal["text"] = Field("text", description="text (the default) or template")
    phone: str = Field(examples=["+14155552671"], description="`+`, country code and digits")
    message: str = Field(description="At most 4096 characters (1024 when interactive)")
    header: str | None = Field(None, max_length=60)
    footer: str | None = Field(None, max_length=60)
    buttons: list[ButtonIn] | None = Field(None, min_length=1, max_length=3)
    preview_url: bool = False
    reply_to: str | None = Field(None, description="A message id (msg_…) or wamid to quote")
    metadata: dict[str, Any] | None = Field(None, description="Echoed in callbacks")
    channel: str | None = Field(None, description="Channel id or phone number id")
    idempotency_key: str | None = Field(None, description="This item's own key")


class BatchTemplateItem(BaseModel):
    """A Send Template body."""

    kind: Literal["template"]
    phone: str = Field(examples=["+919876543210"], description="`+`, country code and digits")
    template: str = Field(examples=["order_confirmation"], description="An approved template")
    language: str | None = Field(None, examples=["en_US"])
    params: TemplateParams | None = None
    reply_to: str | None = Field(None, description="A message id (msg_…) or wamid to quote")
    metadata: dict[str, Any] | None = Field(None, description="Echoed in callbacks")
    channel: str | None = Field(None, description="Channel id or phone number id")
    idempotency_key: str | None = Field(None, description="This item's own key")


class BatchBody(BaseModel):
    token: str | None = Field(None, description="Or send `Authorization: Bearer <token>`")
    # Any value is taken into the batch: an item that is not a valid send is refused in its
    # own result (207), not by refusing the request, and the description says so exactly.
    messages: list[BatchTextItem | BatchTemplateItem | Any] = Field(
        min_length=1,
        max_length=BATCH_MAX_ITEMS,
        description="1 to 1,000 sends, each judged and stored on its own; `kind` says which. "
        "An item that is not a valid send (of a kind this server does not send, breaking a "
        "field rule, not an object) is refused in its own result, the others stored.",
    )


class BatchItemAccepted(BaseModel):
    index: int = Field(description="The item's position in `messages`, from 0")
    success: Literal[True]
    id: str
    status: str
    type: str
    phone: str
    window_expires_at: str | None
    replayed: bool = Field(description="The first answer to this item's idempotency key")


class BatchItemRefused(BaseModel):
    index: int = Field(description="The item's position in `messages`, from 0")
    success: Literal[False]
    status_code: int = Field(description="The HTTP status this item would have had alone")
    error: ErrorDetail


class BatchResult(BaseModel):
    accepted: int = Field(description="Items stored and queued (replays of a key included)")
    refused: int
    results: list[BatchItemAccepted | BatchItemRefused] = Field(
        description="One per item, in the order of `messages`"
    )
