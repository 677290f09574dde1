"""Meta's payload for a media message (pure), from the stored `MessageContent.data`:

    "image" | "video" | "audio" | "document" | "sticker": {"id": <Meta's media id>,
        "caption"? (image, video, document), "filename"? (document)}

The dispatcher puts Meta's media id in `data["meta_media_id"]` once the file is uploaded (or
found in the cache) and builds the payload then. Without one (a page showing the message, say)
the sub-object names the file as a link (`media_url`) or by its wagate id, so the builder is
total.
"""

from __future__ import annotations

from typing import Any

from wagate.domain.models import MessageContent


def media_payload(content: MessageContent, _: str | None) -> tuple[str, Any]:
    data = content.data
    if not data or data.get("media_type") not in {"image", "video", "audio", "document", "sticker"}:
        raise ValueError("a media message needs its media_type")
    media_type: str = data["media_type"]
    media: dict[str, Any]
    if data.get("meta_media_id"):
        media = {"id": data["meta_media_id"]}
    elif data.get("media_url"):
        media = {"link": data["media_url"]}
    else:
        media = {"id": data.get("media_id") or ""}
    if data.get("caption") and media_type in ("image", "video", "document"):
        media["caption"] = data["caption"]
    if data.get("filename") and media_type == "document":
        media["filename"] = data["filename"]
    return media_type, media
