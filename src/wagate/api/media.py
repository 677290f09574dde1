"""`/v1/media`: upload a file to send later (`POST`), read one back (`GET /{id}`).

An upload is `multipart/form-data` with the file in the field `file` (at most 100 MB), and an
optional `media_type` when a file could be sent as several kinds. The token must come in the
`Authorization: Bearer` header: nothing of the file is read before the caller is known. The
bytes stream to the media store (`store/media_files.py`) as they arrive, with their size and
SHA-256; then the type is sniffed from the first bytes and checked against Meta's limits
(`domain/media.py`), and a file that WhatsApp would refuse is deleted and refused at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from wagate.api.body import read_fields
from wagate.api.deps import (
    AccountDep,
    Services,
    ServicesDep,
    authenticate,
    bearer_token,
    services_of,
)
from wagate.api.kinds import accept_kind
from wagate.api.messages import send_openapi
from wagate.api.schemas import SendMessageAccepted, error_responses
from wagate.api.upload import FILE_FIELD, MultipartUpload
from wagate.domain import media as rules
from wagate.domain.errors import (
    FieldError,
    MediaNotFound,
    MissingToken,
    ServiceUnavailable,
    UploadTooLarge,
    ValidationFailed,
)
from wagate.domain.kinds.media import parse_media
from wagate.domain.models import SendRequest
from wagate.ids import new_id
from wagate.store import media as media_store
from wagate.store.db import write_tx
from wagate.store.kind_targets import AccountTargets
from wagate.store.media_files import MediaFileMissing, TooLarge

log = logging.getLogger("wagate.api")
router = APIRouter(prefix="/v1", tags=["media"])

PENDING_WAIT = 15.0
"""Seconds `GET /v1/media/{id}` waits for a customer's file that is still downloading."""


class MediaOut(BaseModel):
    id: str
    media_type: str
    mime_type: str
    size: int
    sha256: str
    filename: str | None = None


_UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "The file; its type is read from its bytes",
                        },
                        "media_type": {
                            "type": "string",
                            "enum": list(rules.MEDIA_TYPES),
                            "description": "What it will be sent as, when it could be several",
                        },
                    },
                }
            }
        },
    }
}


def _upload_responses() -> dict[int | str, dict[str, Any]]:
    responses = error_responses(400, 401, 413, 422, 429, 503)
    responses[413] = responses[413] | {"description": "The file is over 100 MB"}
    return responses


@router.post(
    "/media",
    status_code=201,
    response_model=MediaOut,
    response_model_exclude_none=True,
    responses=_upload_responses(),
    summary="Upload a file (image, video, audio, document, sticker) to send",
    openapi_extra=_UPLOAD_OPENAPI,
)
async def upload_media(request: Request, services: ServicesDep) -> JSONResponse:
    token = bearer_token(request)
    if token is None:
        raise MissingToken(
            "Send the API token as `Authorization: Bearer <token>`: an upload is not read "
            "before the caller is known."
        )
    account_id = await authenticate(services, token)
    body = await keep_upload(services, account_id, MultipartUpload(request))
    return JSONResponse(body, status_code=201)


async def keep_upload(
    services: Services,
    account_id: str,
    upload: MultipartUpload,
    chunks: AsyncIterator[bytes] | None = None,
) -> dict[str, Any]:
    """Stream an upload's file into the media store (as `chunks` yields it, by default
    `upload.file_chunks()`), sniff it, check it against Meta's limits and record it: the
    answer of `POST /v1/media`. A file WhatsApp would refuse is deleted and refused
    (`ValidationFailed`). The dashboard's compose box uploads through this too."""
    media_id = new_id("med")
    files = services.media_files
    try:
        stored = await files.put(
            account_id,
            media_id,
            chunks or upload.file_chunks(),
            limit=rules.MAX_UPLOAD,
            refine=_kind_limit,
        )
    except OSError as exc:  # the data folder is full or not writable
        log.error("media store cannot take an upload: %s", type(exc).__name__)
        raise ServiceUnavailable(
            "The media store cannot take the file right now; nothing was kept. Retry later."
        ) from None
    except TooLarge as exc:
        if exc.limit >= rules.MAX_UPLOAD:
            raise UploadTooLarge() from None
        # The first bytes said what it is, and it is already over that kind's limit: refused
        # without storing the rest (the size said is what had come by then).
        sniffed = rules.sniff(exc.head)
        kind = rules.kind_for_mime(sniffed.mime_type)
        assert kind is not None
        await upload.drain()
        what = "an animated sticker" if sniffed.animated else f"a {kind.name}"
        raise ValidationFailed(
            [
                FieldError(
                    FILE_FIELD,
                    "media_too_large",
                    f"The file is {rules.mime_name(sniffed.mime_type)} and larger than "
                    f"WhatsApp takes for {what}: at most {rules.size_words(exc.limit)} "
                    f"({exc.limit:,} bytes).",
                )
            ]
        ) from None
    errors: list[FieldError] = []
    if not upload.saw_file or stored.size == 0:
        errors.append(
            FieldError(
                FILE_FIELD,
                "missing_field",
                "Send the file in a multipart field named 'file' (curl -F file=@photo.jpg); "
                + ("it was empty." if upload.saw_file else "there was none."),
            )
        )
    media_type = upload.fields.get("media_type") or None
    kind = None
    sniffed = rules.sniff(stored.head)
    if not errors:
        kind, errors = rules.classify(sniffed, stored.size, media_type=media_type)
    if errors or kind is None or sniffed.mime_type is None:
        await files.delete(account_id, [media_id])
        raise ValidationFailed(errors or [rules.not_supported(sniffed, FILE_FIELD)])
    filename = _clean_filename(upload.filename)
    async with write_tx(services.engine) as conn:
        await media_store.add_media(
            conn,
            id=media_id,
            account_id=account_id,
            media_type=kind.name,
            mime_type=sniffed.mime_type,
            size=stored.size,
            sha256=stored.sha256,
            filename=filename,
            origin="upload",
            created_at=services.clock.now(),
        )
    body: dict[str, Any] = {
        "id": media_id,
        "media_type": kind.name,
        "mime_type": sniffed.mime_type,
        "size": stored.size,
        "sha256": stored.sha256,
    }
    if filename:
        body["filename"] = filename
    return body


def _kind_limit(head: bytes) -> int:
    """The most a file may be, once its first bytes say what it is."""
    sniffed = rules.sniff(head)
    kind = rules.kind_for_mime(sniffed.mime_type)
    return kind.limit(animated=sniffed.animated) if kind is not None else rules.MAX_UPLOAD


def _clean_filename(name: str | None) -> str | None:
    """The file's own name, without folders or control characters, at most 240 characters."""
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f").strip()
    return name[: rules.FILENAME_MAX] or None


async def _opened_when_ready(
    services: Services, account_id: str, media_id: str
) -> media_store.OpenedMedia:
    """The file; a customer's file still downloading is waited for, up to `PENDING_WAIT`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PENDING_WAIT
    while True:
        async with services.engine.connect() as conn:
            record = await media_store.get_media(conn, account_id=account_id, media_id=media_id)
        if record is None:
            raise MediaNotFound(f"No file {media_id!r} for this account.", field="id")
        if record.state == media_store.READY:
            return media_store.OpenedMedia(record, services.media_files.open(account_id, media_id))
        if record.state == media_store.FAILED:
            raise MediaNotFound(
                f"The file {media_id!r} could not be downloaded from WhatsApp "
                f"({record.error_code}): {record.error}",
                field="id",
            )
        if loop.time() >= deadline:
            raise MediaNotFound(
                f"The file {media_id!r} is still being downloaded from WhatsApp; ask again in "
                "a few seconds.",
                field="id",
            )
        await asyncio.sleep(0.2)


@router.get(
    "/media/{media_id}",
    responses={
        200: {
            "description": "The file's bytes, with its type",
            # Whatever the file is: image/jpeg, application/pdf, text/plain, …
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        **error_responses(401, 404, 429, 503),
    },
    summary="A stored file (uploaded, or received from a customer)",
)
async def get_media(media_id: str, account_id: AccountDep, services: ServicesDep) -> Any:
    opened = await _opened_when_ready(services, account_id, media_id)
    chunks = opened.chunks
    try:
        first = await anext(chunks, b"")
    except MediaFileMissing:
        raise MediaNotFound(f"The file {media_id!r} is no longer kept.", field="id") from None

    async def stream() -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    # A customer may send any file as a document (an HTML page, say): only the types WhatsApp
    # takes are shown in place; anything else is a download, and nothing a file holds may run.
    mime = opened.mime_type
    shown = rules.kind_for_mime(mime) is not None
    headers = {
        "Content-Length": str(opened.size),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=3600",
        "ETag": f'"{opened.record.sha256}"',
    }
    name = opened.record.filename or opened.record.id
    disposition = "inline" if shown else "attachment"
    headers["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{quote(name, safe='')}"
    return StreamingResponse(
        stream(), media_type=mime if shown else "application/octet-stream", headers=headers
    )


@router.post(
    "/messages/media",
    status_code=202,
    response_model=SendMessageAccepted,
    responses=error_responses(400, 401, 409, 413, 415, 422, 429, 503),
    summary="Send an image, video, audio, document or sticker",
    openapi_extra=send_openapi("SendMediaBody"),
    operation_id="send_media",
)
async def send_media(request: Request) -> JSONResponse:
    services = services_of(request)
    fields, form = await read_fields(request)

    async def check(send: SendRequest, targets: AccountTargets) -> SendRequest:
        return await media_store.check_media_send(
            send, conn=targets.conn, account_id=targets.account_id, policy=services.egress
        )

    return await accept_kind(request, services, parse_media, fields, form, check)
