"""Meta's media rules as data (SPEC §8): which file types each kind of media message may carry,
how large each may be, and what a file is, judged from its first bytes.

    MEDIA_KINDS        media_type → the MIME types Meta takes for it and its size limit
    sniff(head, ...)   the MIME type of a file from its first `SNIFF_BYTES` (the `filetype`
                       library's signatures; Opus inside Ogg and animated WebP checked on top)
    classify(...)      a sniffed file → its media_type, or the `FieldError` that refuses it
    check_for(...)     a stored file against the media_type a message asks for

Error codes (HTTP 422 unless said):

    media_type_not_supported   the content is no type Meta takes (an EXE, a GIF, Ogg Vorbis …)
    media_too_large            over the kind's limit (image 5 MB, video and audio 16 MB,
                               document 100 MB, sticker 100 KB, animated sticker 500 KB); an
                               upload over 100 MB is refused with it as a 413 before it is read
    media_type_mismatch        a file sent as another kind than it is (a PDF as `image`)
    media_not_found            404: no such `med_…` id in the caller's account

Decisions where Meta is silent or loose:
- Sizes are Meta's "MB", decimal (5 MB = 5,000,000 bytes), as Meta's documentation writes them.
- The type is what the bytes say, never the file name, except to tell the Office formats
  apart (they are zip or OLE2 files): `filetype` looks inside for that itself.
- A file with no signature is `text/plain` when its start is UTF-8 with no control bytes other
  than tabs and line ends; anything else without a signature is not supported.
- `audio/ogg` is taken only with the Opus codec (Meta plays no Vorbis); an MP4 container is
  `video/mp4` unless its brand says audio (M4A), then `audio/mp4`.
- A WebP is a sticker (Meta has no WebP images); an animated WebP may be up to 500 KB.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import filetype

from wagate.domain.errors import FieldError

SNIFF_BYTES = 8192
"""Bytes of a file's start that decide its type (what `filetype` reads)."""
MAX_UPLOAD = 100_000_000
"""The largest file of any kind (a document), and the upload limit of `POST /v1/media`."""
CAPTION_MAX = 1024
FILENAME_MAX = 240
MEDIA_URL_MAX = 2048

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
"""What `POST /v1/messages/media` sends (`voice` is an inbound kind only: an Opus audio)."""

DOCUMENT_MIMES = (
    "text/plain",
    "application/pdf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
)


@dataclass(frozen=True, slots=True)
class MediaKind:
    """One kind of media message: the MIME types Meta takes for it, and its size limit."""

    name: str
    mimes: tuple[str, ...]
    max_bytes: int
    animated_max_bytes: int | None = None  # stickers: an animated WebP may be larger
    caption: bool = False  # whether a caption may go with it

    def limit(self, *, animated: bool = False) -> int:
        if animated and self.animated_max_bytes is not None:
            return self.animated_max_bytes
        return self.max_bytes


MEDIA_KINDS: Mapping[str, MediaKind] = {
    kind.name: kind
    for kind in (
        MediaKind("image", ("image/jpeg", "image/png"), 5_000_000, caption=True),
        MediaKind("video", ("video/mp4", "video/3gpp"), 16_000_000, caption=True),
        MediaKind(
            "audio",
            ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"),
            16_000_000,
        ),
        MediaKind("document", DOCUMENT_MIMES, MAX_UPLOAD, caption=True),
        MediaKind("sticker", ("image/webp",), 100_000, animated_max_bytes=500_000),
    )
}

# Names people know the types by, for messages.
_MIME_NAMES = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WebP",
    "video/mp4": "MP4",
    "video/3gpp": "3GPP",
    "audio/aac": "AAC",
    "audio/amr": "AMR",
    "audio/mpeg": "MP3",
    "audio/mp4": "MP4 audio",
    "audio/ogg": "OGG (Opus)",
    "text/plain": "plain text",
    "application/pdf": "PDF",
    "application/msword": "Word",
    "application/vnd.ms-excel": "Excel",
    "application/vnd.ms-powerpoint": "PowerPoint",
    DOCUMENT_MIMES[5]: "Word",
    DOCUMENT_MIMES[6]: "Excel",
    DOCUMENT_MIMES[7]: "PowerPoint",
}
# What filetype says for types Meta takes under another name.
_MIME_ALIASES = {"video/x-m4v": "video/mp4", "audio/x-m4a": "audio/mp4"}
_OGG_OPUS_MARK = b"OpusHead"
_WEBP_ANIMATED_FLAG = 0x02


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What a file's first bytes say it is."""

    mime_type: str | None  # None: no type we could name
    animated: bool = False  # an animated WebP
    described: str = ""  # what it is, in words, for a refusal ("a GIF image")


def sniff(head: bytes) -> Sniffed:
    """The type of a file from its first bytes (`SNIFF_BYTES` of them, or all of a smaller
    file)."""
    kind = filetype.guess(head[:SNIFF_BYTES]) if head else None
    if kind is None:
        if head and _looks_like_text(head[:SNIFF_BYTES]):
            return Sniffed("text/plain", described="plain text")
        return Sniffed(None, described="a file of no type WhatsApp takes")
    mime = _MIME_ALIASES.get(kind.mime, kind.mime)
    if mime == "audio/ogg" and _OGG_OPUS_MARK not in head[:SNIFF_BYTES]:
        return Sniffed(None, described="an Ogg file without the Opus codec (Vorbis, say)")
    animated = mime == "image/webp" and _animated_webp(head)
    return Sniffed(mime, animated=animated, described=f"{kind.mime} (.{kind.extension})")


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the sample is still text.
        if exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8")
    return all(ch >= " " or ch in "\t\n\r\f" for ch in text)


def _animated_webp(head: bytes) -> bool:
    # RIFF....WEBPVP8X: the extended header's flags byte says whether it has an animation.
    return head[12:16] == b"VP8X" and len(head) > 20 and bool(head[20] & _WEBP_ANIMATED_FLAG)


def mime_name(mime: str | None) -> str:
    return _MIME_NAMES.get(mime or "", mime or "unknown")


def kind_for_mime(mime: str | None) -> MediaKind | None:
    """The kind a file of this type is sent as by default (a WebP is a sticker)."""
    for kind in MEDIA_KINDS.values():
        if mime in kind.mimes:
            return kind
    return None


def size_words(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:g} MB"
    if size >= 1_000:
        return f"{size / 1_000:g} KB"
    return f"{size} bytes"


def _supported_list() -> str:
    return "; ".join(
        f"{kind.name} {', '.join(dict.fromkeys(mime_name(m) for m in kind.mimes))} "
        f"≤ {size_words(kind.max_bytes)}"
        for kind in MEDIA_KINDS.values()
    )


def not_supported(sniffed: Sniffed, field: str) -> FieldError:
    return FieldError(
        field,
        "media_type_not_supported",
        f"The file is {sniffed.described}, which WhatsApp does not take. WhatsApp takes: "
        f"{_supported_list()}.",
    )


def too_large(kind: MediaKind, size: int, field: str, *, animated: bool = False) -> FieldError:
    what = "an animated sticker" if animated else f"a {kind.name}"
    return FieldError(
        field,
        "media_too_large",
        f"The file is {size:,} bytes; WhatsApp takes {what} of at most "
        f"{size_words(kind.limit(animated=animated))} ({kind.limit(animated=animated):,} bytes).",
    )


def classify(
    sniffed: Sniffed, size: int, *, media_type: str | None = None, field: str = "file"
) -> tuple[MediaKind | None, list[FieldError]]:
    """The kind a file is (or the one asked for, when it fits it), or why it cannot be sent."""
    if sniffed.mime_type is None:
        return None, [not_supported(sniffed, field)]
    if media_type is not None:
        return check_for(media_type, sniffed.mime_type, size, sniffed.animated, field=field)
    kind = kind_for_mime(sniffed.mime_type)
    if kind is None:
        return None, [not_supported(sniffed, field)]
    if size > kind.limit(animated=sniffed.animated):
        return kind, [too_large(kind, size, field, animated=sniffed.animated)]
    return kind, []


def check_for(
    media_type: str, mime: str, size: int, animated: bool = False, *, field: str = "media_id"
) -> tuple[MediaKind | None, list[FieldError]]:
    """A file of `mime` and `size` sent as `media_type`: its kind, or why not."""
    kind = MEDIA_KINDS.get(media_type)
    if kind is None:
        return None, [
            FieldError(
                "media_type",
                "invalid_field",
                f"media_type must be one of {', '.join(MEDIA_TYPES)}.",
            )
        ]
    if mime not in kind.mimes:
        usual = kind_for_mime(mime)
        if usual is None:
            return kind, [not_supported(Sniffed(mime, described=mime), field)]
        article = "an" if kind.name[0] in "aeiou" else "a"
        return kind, [
            FieldError(
                field,
                "media_type_mismatch",
                f"The file is {mime_name(mime)} ({mime}); {article} {kind.name} must be "
                f"{', '.join(dict.fromkeys(mime_name(m) for m in kind.mimes))}. "
                f"Send it as {usual.name}.",
            )
        ]
    if size > kind.limit(animated=animated):
        return kind, [too_large(kind, size, field, animated=animated)]
    return kind, []
