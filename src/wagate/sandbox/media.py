"""The sandbox's media, as Meta's Cloud API serves it:

    POST /graph/{version}/{phone_number_id}/media   upload (multipart: messaging_product,
                                                    type, file) → {"id": "<digits>"}
    GET  /graph/{version}/{media_id}                → {"url", "mime_type", "sha256",
                                                    "file_size", "id", "messaging_product"}
    GET  /media-file/{media_id}?expires=…&sig=…     the file, with the access token, until the
                                                    URL expires (Meta's last five minutes)
    POST /customer/media                            the customer sends an image, video, audio,
                                                    voice note, document or sticker (multipart:
                                                    phone, kind, file, caption): a signed webhook
                                                    with Meta's media object

Files are kept in the sandbox's folder (beside its state file, or a temporary folder), their
index in memory: after a restart the sandbox has forgotten earlier uploads, as Meta forgets
them after 30 days.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile

from wagate.domain.media import MEDIA_KINDS, sniff
from wagate.sandbox import graph

URL_LIFETIME = 300.0
"""Seconds a download URL works (Meta: five minutes)."""
MAX_FILE = 100_000_000
INBOUND_KINDS = ("image", "video", "audio", "voice", "document", "sticker")


@dataclass(frozen=True, slots=True)
class SandboxFile:
    id: str
    phone_number_id: str
    mime_type: str
    sha256: str
    size: int
    path: Path
    filename: str | None = None


class SandboxMedia:
    def __init__(self, folder: Path | None, secret: str) -> None:
        self._temporary = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="wagate-sandbox-media-"))
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._secret = secret.encode()
        self.files: dict[str, SandboxFile] = {}
        self.uploads = 0

    def close(self) -> None:
        if self._temporary:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _new_id(self) -> str:
        # Meta's media ids are digits.
        return str(int(time.time() * 1000) * 1000 + len(self.files) % 1000 + 10**15)

    async def keep(
        self, upload: UploadFile, phone_number_id: str, mime_type: str | None = None
    ) -> SandboxFile:
        """Store an uploaded file (already spooled by the form parser) chunk by chunk."""
        media_id = self._new_id()
        path = self.folder / media_id
        digest = hashlib.sha256()
        size = 0
        head = b""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > MAX_FILE:
                    out.close()
                    path.unlink()
                    raise graph.GraphError(
                        131052, "(#131052) Media upload error", details="The file is too large."
                    )
                if len(head) < 8192:
                    head += chunk[: 8192 - len(head)]
                digest.update(chunk)
                out.write(chunk)
        sniffed = sniff(head).mime_type
        found = SandboxFile(
            media_id,
            phone_number_id,
            mime_type or sniffed or "application/octet-stream",
            digest.hexdigest(),
            size,
            path,
            upload.filename,
        )
        self.files[media_id] = found
        return found

    def sign(self, media_id: str, expires: int) -> str:
        return hmac.new(self._secret, f"{media_id}.{expires}".encode(), "sha256").hexdigest()

    def url(self, base: str, media_id: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + URL_LIFETIME)
        return (
            f"{base.rstrip('/')}/media-file/{media_id}?expires={expires}"
            f"&sig={self.sign(media_id, expires)}"
        )

    def check_download(self, media_id: str, expires: str, sig: str) -> SandboxFile:
        found = self.files.get(media_id)
        if found is None or not expires.isdigit():
            raise graph.GraphError(100, "(#100) Invalid media URL", http_status=404)
        if not hmac.compare_digest(self.sign(media_id, int(expires)), sig):
            raise graph.GraphError(100, "(#100) Invalid media URL", http_status=404)
        if int(expires) < time.time():
            raise graph.GraphError(
                100, "(#100) The media URL has expired; ask GET /{media-id} again",
                http_status=404,
            )  # fmt: skip
        return found

    def describe(self, found: SandboxFile, base: str) -> dict[str, Any]:
        return {
            "messaging_product": "whatsapp",
            "url": self.url(base, found.id),
            "mime_type": found.mime_type,
            "sha256": found.sha256,
            "file_size": found.size,
            "id": found.id,
        }

    def check_send(self, payload: dict[str, Any]) -> None:
        """A media message names a media id the number uploaded, as Meta requires."""
        kind = payload.get("type")
        media = payload.get(kind) if isinstance(kind, str) else None
        if kind not in MEDIA_KINDS or not isinstance(media, dict):
            return
        media_id = media.get("id")
        if isinstance(media_id, str) and media_id not in self.files:
            raise graph.GraphError(
                131053,
                "(#131053) Media upload error",
                details=f"Unknown media id {media_id}: upload it with POST /{{phone-number-id}}"
                "/media first.",
            )


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


async def customer_sends_media(
    sandbox: Any, *, phone: object, kind: object, upload: object, caption: object, name: object
) -> dict[str, Any]:
    """The customer sends a file: kept like an upload, then Meta's webhook with its media object
    (`voice` is Meta's `audio` with `"voice": true`)."""
    from wagate.sandbox import events
    from wagate.sandbox.service import DEFAULT_PROFILE_NAME, SandboxRequestError, wa_id_of

    wa_id = wa_id_of(phone)
    if kind not in INBOUND_KINDS:
        raise SandboxRequestError(
            "invalid_field", f"kind must be one of {', '.join(INBOUND_KINDS)}.", field="kind"
        )
    if not isinstance(upload, UploadFile):
        raise SandboxRequestError(
            "missing_field", "Send the file in the field 'file'.", field="file"
        )
    if caption is not None and not isinstance(caption, str):
        raise SandboxRequestError("invalid_field", "caption must be text.", field="caption")
    profile = name if isinstance(name, str) and name else DEFAULT_PROFILE_NAME
    cfg = sandbox.config
    kept = await sandbox.media.keep(upload, cfg.phone_number_id)
    meta_type = "audio" if kind == "voice" else str(kind)
    media: dict[str, Any] = {"id": kept.id, "mime_type": kept.mime_type, "sha256": kept.sha256}
    if kind == "voice":
        media["mime_type"] = "audio/ogg; codecs=opus"
        media["voice"] = True
    if caption and meta_type in ("image", "video", "document"):
        media["caption"] = caption
    if meta_type == "document" and kept.filename:
        media["filename"] = kept.filename
    now = time.time()
    wamid = events.new_wamid(wa_id)
    message = {
        "from": wa_id, "id": wamid, "timestamp": str(int(now)), "type": meta_type,
        meta_type: media,
    }  # fmt: skip
    sandbox.ensure_started()
    sandbox.state.record_inbound(
        wamid=wamid,
        phone_number_id=cfg.phone_number_id,
        wa_id=wa_id,
        type=meta_type,
        content={"type": meta_type, "text": caption or f"[{kind}]", "media": media,
                 "name": profile, "timestamp": int(now)},
        sent_at=int(now),
        received_at=now,
    )  # fmt: skip
    value = events.inbound_value(cfg, wa_id, profile, message)
    delivered, status_code = await sandbox.webhooks.deliver_now(
        events.dumps(events.envelope(cfg, value))
    )
    return {
        "wamid": wamid, "media_id": kept.id, "delivered": delivered, "status_code": status_code,
    }  # fmt: skip


_MEDIA_KEYS = {
    "image": ("id", "link", "caption"),
    "video": ("id", "link", "caption"),
    "audio": ("id", "link"),
    "document": ("id", "link", "caption", "filename"),
    "sticker": ("id", "link"),
}
CAPTION_MAX = 1024


def check_media_message(body: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """An image, video, audio, document or sticker send as the Cloud API checks it: its object
    with exactly one of `id` and `link`, a caption only where WhatsApp shows one (≤ 1024), a
    filename on documents only. Whether the id was uploaded is checked by `check_send`."""
    kind = str(body.get("type"))
    media = body.get(kind)
    if media is None:
        raise graph.required(kind)
    if not isinstance(media, dict):
        raise graph.wrong_type(kind, "a JSON object")
    for key in media:
        if key not in _MEDIA_KEYS[kind]:
            raise graph.unexpected_key(key, kind)
    given = [k for k in ("id", "link") if media.get(k) not in (None, "")]
    if len(given) != 1:
        raise graph.invalid_parameter(
            f"Param {kind} must have exactly one of 'id' (an uploaded media id) and 'link'."
        )
    for key in ("id", "link", "caption", "filename"):
        if key in media and not isinstance(media[key], str):
            raise graph.wrong_type(f"{kind}['{key}']", "a string")
    if "link" in media and not str(media["link"]).startswith(("https://", "http://")):
        raise graph.invalid_parameter(f"Param {kind}['link'] must be a valid URL.")
    caption = media.get("caption")
    if isinstance(caption, str) and len(caption) > CAPTION_MAX:
        raise graph.invalid_value(
            f"{kind} caption length invalid. Min length: 1, Max length: {CAPTION_MAX}"
        )
    text = caption or media.get("filename") or f"[{kind}]"
    return text, {"media": dict(media)}
