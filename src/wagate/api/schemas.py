"""Pydantic models that describe the API in /openapi.json (bodies are parsed by the domain)."""

from __future__ import annotations

from typing import Any

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
        503: "Storage unavailable; nothing was accepted",
    }
    return {s: {"model": ErrorResponse, "description": descriptions[s]} for s in statuses}
