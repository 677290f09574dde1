"""`/media/{id}`: one of the account's stored files, for the dashboard's thumbnails, players and
document chips (same origin, so the pages' CSP lets them load it).

Only for a signed-in user, only the account's own files (another id is a 404, as for the API).
What a customer sent must never run on this origin: only the image, video and audio types that
WhatsApp carries are shown inline; everything else (a PDF, an SVG, an HTML file renamed) is a
download of `application/octet-stream`, and every answer carries `nosniff` and a CSP that
forbids scripts even when opened on its own.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from wagate.dashboard import media_files
from wagate.dashboard.web import PageNotFound, SignedIn, dashboard_of

router = APIRouter(include_in_schema=False)

# What a browser may show inline: WhatsApp's image, sticker, video and audio types (SPEC §8).
INLINE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/webp",
        "video/mp4",
        "video/3gpp",
        "audio/aac",
        "audio/amr",
        "audio/mpeg",
        "audio/mp4",
        "audio/ogg",
    }
)
FILE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; media-src 'self'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "private, max-age=300",
}


def _disposition(kind: str, filename: str | None) -> str:
    if not filename:
        return kind
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in filename
    )
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get("/media/{media_id}")
async def media_file(media_id: str, request: Request, user: SignedIn) -> Response:
    opened = await media_files.open_file(
        dashboard_of(request).services, account_id=user.account_id, media_id=media_id
    )
    if opened is None:
        raise PageNotFound("This account has no such file.", title="No such file")
    mime = opened.mime_type.split(";", 1)[0].strip().lower()
    inline = mime in INLINE_TYPES and request.query_params.get("download") != "1"
    headers = dict(FILE_HEADERS)
    headers["Content-Disposition"] = _disposition(
        "inline" if inline else "attachment", opened.record.filename
    )
    media_type = mime if inline else "application/octet-stream"
    size = opened.size
    headers["Accept-Ranges"] = "bytes"
    wanted = _byte_range(request.headers.get("range"), size)
    if wanted is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(opened.chunks, media_type=media_type, headers=headers)
    if wanted is False:
        await _close(opened.chunks)
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(
        _slice(opened.chunks, start, end), status_code=206, media_type=media_type, headers=headers
    )


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | Literal[False] | None:
    """The one byte range a player asks for (`Range: bytes=START-END`, END or START may be
    left out), as (first, last); None to send the whole file (no range, or several), False
    when it lies outside the file."""
    if not header:
        return None
    found = _RANGE.fullmatch(header.strip())
    if found is None or found.group(1) == found.group(2) == "":
        return None
    first, last = found.group(1), found.group(2)
    if first == "":  # the last N bytes
        count = int(last)
        if count == 0:
            return False
        return max(0, size - count), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return False
    return start, end


async def _slice(chunks: AsyncIterator[bytes], start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes `start` to `end` (inclusive) of the file's chunks."""
    offset = 0
    try:
        async for chunk in chunks:
            following = offset + len(chunk)
            if following > start and offset <= end:
                yield chunk[max(0, start - offset) : end - offset + 1]
            offset = following
            if offset > end:
                break
    finally:
        await _close(chunks)


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """Let the store close the file (an async generator's `aclose`)."""
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()
