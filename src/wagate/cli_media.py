"""Media in the CLI: `wagate send --image FILE|URL` (and --video, --audio, --document,
--sticker) for the business, and `wagate sandbox reply --image FILE` (and --video, --audio,
--voice, --document, --sticker) for the sandbox's customer."""

from __future__ import annotations

from pathlib import Path

import typer

from wagate.client import Accepted, Client

SEND_MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
REPLY_MEDIA_KINDS = ("image", "video", "audio", "voice", "document", "sticker")


def chosen_media(options: dict[str, str | None]) -> tuple[str, str] | None:
    """The one media option given (kind, FILE or URL), None when there is none."""
    given = [(kind, value) for kind, value in options.items() if value is not None]
    if len(given) > 1:
        raise typer.BadParameter(
            "give one file per message: " + ", ".join(f"--{kind}" for kind, _ in given)
        )
    return given[0] if given else None


def send_media_from_cli(
    wa: Client,
    phone: str,
    media_type: str,
    source: str,
    *,
    caption: str | None,
    filename: str | None,
    channel: str | None,
    idempotency_key: str | None,
) -> Accepted:
    """A link is sent as media_url (wagate fetches it); a file is uploaded first."""
    if source.startswith(("https://", "http://")):
        return wa.send_media(
            phone,
            media_type,
            media_url=source,
            caption=caption,
            filename=filename,
            channel=channel,
            idempotency_key=idempotency_key,
        )
    path = Path(source)
    if not path.is_file():
        raise typer.BadParameter(f"{source}: no such file (give a file or an https:// link)")
    uploaded = wa.upload_media(path, media_type=media_type)
    if media_type == "document" and filename is None:
        filename = path.name
    return wa.send_media(
        phone,
        media_type,
        media_id=uploaded["id"],
        caption=caption,
        filename=filename,
        channel=channel,
        idempotency_key=idempotency_key,
    )
