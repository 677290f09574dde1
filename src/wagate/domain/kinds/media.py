"""Media messages (SPEC §8 `POST /v1/messages/media`): an image, video, audio, document or
sticker, given as a file uploaded before (`media_id`, from `POST /v1/media`) or a link wagate
fetches when it sends (`media_url`).

Stored as `MessageContent(type=media, body=<caption, else filename, else "[image]">, data=…)`
with `data = {"media_type", "media_id" | "media_url", "caption"?, "filename"?}`; a `media_id`
is checked against the account's stored file at accept (`check_stored`), which adds its
`mime_type`, `size` and `sha256`.

Error codes (HTTP 422):

    missing_field              media_type absent, or neither media_id nor media_url
    invalid_field              media_type not one of image, video, audio, document, sticker;
                               both media_id and media_url given; a field of the wrong type
    invalid_url                media_url not an https:// link with a host
    url_not_allowed            media_url names an address the egress policy refuses (a literal
                               private or loopback address: checked where the send is accepted;
                               names are checked on the address connected to, when fetched)
    caption_too_long           caption over 1024 characters
    caption_not_allowed        a caption on audio or a sticker (WhatsApp shows none)
    filename_not_allowed       a filename on anything but a document
    field_too_long             filename over 240 characters
    media_not_found            media_id is no file of this account
    media_type_mismatch        the stored file is not of media_type (a PDF sent as image)
    media_too_large            the stored file is over media_type's limit
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wagate.domain.errors import FieldError, ValidationFailed
from wagate.domain.kinds.fields import (
    read_extras,
    read_optional_text,
    read_url,
    unstorable,
    wrong_type,
)
from wagate.domain.media import (
    CAPTION_MAX,
    FILENAME_MAX,
    MEDIA_KINDS,
    MEDIA_TYPES,
    check_for,
)
from wagate.domain.models import MessageContent, MessageType, SendRequest

MEDIA_ID_MAX = 40


def parse_media(fields: Mapping[str, Any], *, form: bool = False) -> SendRequest:
    errors: list[FieldError] = []
    media_type = _media_type(fields.get("media_type"), errors)
    raw_id, raw_url = fields.get("media_id"), fields.get("media_url")
    has_id = raw_id not in (None, "")
    has_url = raw_url not in (None, "")
    media_id: str | None = None
    media_url: str | None = None
    if has_id and has_url:
        errors.append(
            FieldError(
                "media_url",
                "invalid_field",
                "Give either media_id (a file uploaded with POST /v1/media) or media_url (a "
                "link wagate fetches), not both.",
            )
        )
    elif has_id:
        media_id = _media_id(raw_id, errors)
    elif has_url:
        media_url = read_url(raw_url, "media_url", errors)
    else:
        errors.append(
            FieldError(
                "media_id",
                "missing_field",
                "Give the file: media_id (from POST /v1/media) or media_url (an https:// link).",
            )
        )
    caption = read_optional_text(
        fields.get("caption"), "caption", CAPTION_MAX, errors, too_long="caption_too_long"
    )
    filename = read_optional_text(
        fields.get("filename"), "filename", FILENAME_MAX, errors, too_long="field_too_long"
    )
    if media_type is not None:
        kind = MEDIA_KINDS[media_type]
        if caption is not None and not kind.caption:
            errors.append(
                FieldError(
                    "caption",
                    "caption_not_allowed",
                    f"WhatsApp shows no caption on {'an' if media_type == 'audio' else 'a'} "
                    f"{media_type}; captions go with images, videos and documents.",
                )
            )
        if filename is not None and media_type != "document":
            errors.append(
                FieldError(
                    "filename",
                    "filename_not_allowed",
                    "A filename goes with a document only (it is the name WhatsApp shows).",
                )
            )
    extras = read_extras(fields, form, errors)
    if errors:
        raise ValidationFailed(errors)
    assert media_type is not None
    data: dict[str, Any] = {"media_type": media_type}
    if media_id is not None:
        data["media_id"] = media_id
    else:
        data["media_url"] = media_url
    if caption is not None:
        data["caption"] = caption
    if filename is not None:
        data["filename"] = filename
    body = caption or filename or f"[{media_type}]"
    return extras.request(MessageContent(type=MessageType.MEDIA, body=body, data=data))


def _media_type(value: object, errors: list[FieldError]) -> str | None:
    if value is None or value == "":
        errors.append(
            FieldError(
                "media_type",
                "missing_field",
                f"media_type is required: one of {', '.join(MEDIA_TYPES)}.",
            )
        )
        return None
    if not isinstance(value, str) or value not in MEDIA_KINDS:
        shown = repr(value) if isinstance(value, str) else "not a string"
        errors.append(
            FieldError(
                "media_type",
                "invalid_field",
                f"media_type must be one of {', '.join(MEDIA_TYPES)}; got {shown}.",
            )
        )
        return None
    return value


def _media_id(value: object, errors: list[FieldError]) -> str | None:
    if not isinstance(value, str):
        errors.append(wrong_type("media_id", value, "a string"))
        return None
    if (bad := unstorable("media_id", value)) is not None:
        errors.append(bad)
        return None
    if len(value) > MEDIA_ID_MAX or not value.startswith("med_"):
        errors.append(
            FieldError(
                "media_id",
                "media_not_found",
                "media_id must be the id POST /v1/media answered (med_…).",
            )
        )
        return None
    return value


def check_stored(
    send: SendRequest, *, mime_type: str | None, size: int | None, sha256: str | None
) -> SendRequest:
    """The send with its stored file checked against its media_type (None: no such file)."""
    data = dict(send.content.data or {})
    if mime_type is None or size is None:
        raise ValidationFailed(
            [
                FieldError(
                    "media_id",
                    "media_not_found",
                    f"No file {data.get('media_id')!r} for this account; upload it with "
                    "POST /v1/media first.",
                )
            ]
        )
    animated = data["media_type"] == "sticker"  # the upload checked the exact limit
    _, errors = check_for(data["media_type"], mime_type, size, animated, field="media_id")
    if errors:
        raise ValidationFailed(errors)
    data.update(mime_type=mime_type, size=size, sha256=sha256)
    content = MessageContent(type=send.content.type, body=send.content.body, data=data)
    return SendRequest(
        phone=send.phone,
        content=content,
        reply_to=send.reply_to,
        metadata=send.metadata,
        channel=send.channel,
        idempotency_key=send.idempotency_key,
    )
