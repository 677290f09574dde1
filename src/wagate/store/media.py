"""The `media` table: stored files (uploaded, fetched from a `media_url`, downloaded from a
customer's message), inbound downloads waiting to be made, and Meta's media ids per channel
and content (`media_uploads`). The bytes are behind `store/media_files.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wagate.domain.errors import UrlNotAllowed
from wagate.domain.kinds.media import check_stored
from wagate.domain.models import SendRequest
from wagate.egress.policy import ALLOW_HINT, EgressPolicy, literal_address
from wagate.store.media_files import MediaFiles
from wagate.store.tables import media, media_uploads

if TYPE_CHECKING:
    from wagate.domain.models import InboundMessage
    from wagate.store.accounts import Channel
    from wagate.store.retention import Prune

META_MEDIA_LIFETIME = timedelta(days=29)
"""How long a media id Meta gave us is reused (Meta keeps an upload 30 days)."""

READY, PENDING, FAILED = "ready", "pending", "failed"


@dataclass(frozen=True, slots=True)
class MediaRecord:
    id: str
    account_id: str
    media_type: str
    mime_type: str | None
    size: int | None
    sha256: str | None
    filename: str | None
    origin: str
    state: str
    error_code: str | None
    error: str | None
    created_at: datetime
    channel_id: str | None = None
    meta_media_id: str | None = None
    attempts: int = 0

    def public(self) -> dict[str, Any]:
        """What the API shows of it (`POST /v1/media`'s answer)."""
        out: dict[str, Any] = {
            "id": self.id,
            "media_type": self.media_type,
            "mime_type": self.mime_type,
            "size": self.size,
            "sha256": self.sha256,
        }
        if self.filename:
            out["filename"] = self.filename
        return out

    def view(self) -> dict[str, Any]:
        """A customer's file where their message is shown: its id, what it is, and whether it
        is kept yet (`pending`, `ready`, or `failed` with the reason)."""
        out = self.public()
        out["status"] = self.state
        if self.state == FAILED:
            out["error"] = {"code": self.error_code, "message": self.error}
        return out


_COLUMNS = (
    media.c.id,
    media.c.account_id,
    media.c.media_type,
    media.c.mime_type,
    media.c.size,
    media.c.sha256,
    media.c.filename,
    media.c.origin,
    media.c.state,
    media.c.error_code,
    media.c.error,
    media.c.created_at,
    media.c.channel_id,
    media.c.meta_media_id,
    media.c.attempts,
)


def _record(row: Any) -> MediaRecord:
    return MediaRecord(*row)


async def add_media(conn: AsyncConnection, **values: Any) -> None:
    """A row for a stored file (`state` ready unless given)."""
    values.setdefault("state", READY)
    await conn.execute(insert(media), values)


async def get_media(conn: AsyncConnection, *, account_id: str, media_id: str) -> MediaRecord | None:
    """The account's own file, or None (another account's is None too)."""
    row = (
        await conn.execute(
            select(*_COLUMNS).where(media.c.id == media_id, media.c.account_id == account_id)
        )
    ).first()
    return _record(row) if row is not None else None


async def media_by_ids(conn: AsyncConnection, ids: list[str]) -> dict[str, MediaRecord]:
    if not ids:
        return {}
    rows = await conn.execute(select(*_COLUMNS).where(media.c.id.in_(ids)))
    return {row.id: _record(row) for row in rows}


# --------------------------------------------------------------------------- Meta's ids


async def cached_meta_id(
    conn: AsyncConnection, *, channel_id: str, sha256: str, now: datetime
) -> str | None:
    """Meta's media id for this content, uploaded through this channel recently enough."""
    return await conn.scalar(
        select(media_uploads.c.meta_media_id).where(
            media_uploads.c.channel_id == channel_id,
            media_uploads.c.sha256 == sha256,
            media_uploads.c.uploaded_at > now - META_MEDIA_LIFETIME,
        )
    )


async def remember_meta_id(
    conn: AsyncConnection, *, channel_id: str, sha256: str, meta_media_id: str, now: datetime
) -> None:
    await conn.execute(
        delete(media_uploads).where(
            media_uploads.c.channel_id == channel_id, media_uploads.c.sha256 == sha256
        )
    )
    await conn.execute(
        insert(media_uploads),
        {"channel_id": channel_id, "sha256": sha256, "meta_media_id": meta_media_id,
         "uploaded_at": now},
    )  # fmt: skip


async def forget_meta_id(conn: AsyncConnection, *, channel_id: str, sha256: str) -> None:
    """Meta no longer knows the id (it expired early, say): upload again next time."""
    await conn.execute(
        delete(media_uploads).where(
            media_uploads.c.channel_id == channel_id, media_uploads.c.sha256 == sha256
        )
    )


# --------------------------------------------------------------------------- inbound downloads


@dataclass(frozen=True, slots=True)
class Download:
    """An inbound file to fetch from Meta."""

    media_id: str
    account_id: str
    channel_id: str
    meta_media_id: str
    media_type: str
    mime_type: str | None
    sha256: str | None
    attempts: int


async def claim_downloads(
    conn: AsyncConnection, *, now: datetime, lease: timedelta, limit: int
) -> list[Download]:
    """The next pending downloads that are due, each leased (its next try moved to after the
    lease) so that no other worker takes it meanwhile; a crashed worker's come back then."""
    query = (
        select(
            media.c.id,
            media.c.account_id,
            media.c.channel_id,
            media.c.meta_media_id,
            media.c.media_type,
            media.c.mime_type,
            media.c.sha256,
            media.c.attempts,
        )
        .where(media.c.state == PENDING, media.c.available_at <= now)
        .order_by(media.c.available_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = (await conn.execute(query)).all()
    if not rows:
        return []
    await conn.execute(
        update(media)
        .where(media.c.id.in_([r.id for r in rows]))
        .values(available_at=now + lease, attempts=media.c.attempts + 1)
    )
    return [
        Download(r.id, r.account_id, r.channel_id, r.meta_media_id, r.media_type, r.mime_type,
                 r.sha256, r.attempts + 1)
        for r in rows
    ]  # fmt: skip


async def download_done(
    conn: AsyncConnection, *, media_id: str, mime_type: str, size: int, sha256: str
) -> None:
    await conn.execute(
        update(media)
        .where(media.c.id == media_id, media.c.state == PENDING)
        .values(
            state=READY, mime_type=mime_type, size=size, sha256=sha256, available_at=None,
            error_code=None, error=None,
        )
    )  # fmt: skip


async def download_retry(
    conn: AsyncConnection, *, media_id: str, at: datetime, code: str, error: str
) -> None:
    await conn.execute(
        update(media)
        .where(media.c.id == media_id, media.c.state == PENDING)
        .values(available_at=at, error_code=code, error=error[:1000])
    )


async def download_failed(conn: AsyncConnection, *, media_id: str, code: str, error: str) -> None:
    await conn.execute(
        update(media)
        .where(media.c.id == media_id, media.c.state == PENDING)
        .values(state=FAILED, available_at=None, error_code=code, error=error[:1000])
    )


async def next_download_due(conn: AsyncConnection) -> datetime | None:
    due: datetime | None = await conn.scalar(
        select(media.c.available_at)
        .where(media.c.state == PENDING)
        .order_by(media.c.available_at)
        .limit(1)
    )
    return due


INBOUND_MEDIA_TYPES = {"image", "video", "audio", "document", "sticker"}


async def queue_inbound_download(
    conn: AsyncConnection, *, channel: Channel, message: InboundMessage, now: datetime
) -> None:
    """A customer's file to download (in the transaction that stores their message): a
    pending row under the `med_…` id the webhook parser gave it, due at once."""
    given = message.media or {}
    media_id = given.get("wagate_media_id")
    meta_id = given.get("id")
    if not media_id or not meta_id:
        return
    kind = message.kind if message.kind in INBOUND_MEDIA_TYPES else "audio"
    await conn.execute(
        insert(media),
        {
            "id": media_id, "account_id": channel.account_id, "media_type": kind,
            "mime_type": given.get("mime_type"), "sha256": given.get("sha256"),
            "filename": given.get("filename"), "origin": "inbound", "state": PENDING,
            "channel_id": channel.id, "meta_media_id": meta_id, "wamid": message.wamid,
            "available_at": now, "created_at": now,
        },
    )  # fmt: skip


async def inbound_media(
    conn: AsyncConnection, *, channel_ids: list[str], wamids: list[str]
) -> dict[tuple[str, str], MediaRecord]:
    """The files of these inbound messages, by (channel id, wamid)."""
    if not wamids:
        return {}
    rows = await conn.execute(
        select(*_COLUMNS, media.c.wamid).where(
            media.c.channel_id.in_(channel_ids), media.c.wamid.in_(wamids)
        )
    )
    return {(row.channel_id, row.wamid): _record(row[:-1]) for row in rows}


# --------------------------------------------------------------------------- retention

_OLDEST = (
    select(media.c.id, media.c.created_at, media.c.account_id)
    .where(media.c.id > bindparam("after"))
    .order_by(media.c.id)
    .limit(bindparam("limit"))
)


def media_pruner(files: MediaFiles) -> Prune:
    """The retention rule's deletion: the oldest files past the cutoff, rows and bytes, and
    Meta's ids older than Meta keeps them."""

    async def prune(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
        rows = (await conn.execute(_OLDEST, {"after": "", "limit": limit})).all()
        old = []
        for row in rows:
            if row.created_at >= cutoff:
                break
            old.append((row.account_id, row.id))
        if old:
            await conn.execute(delete(media).where(media.c.id.in_([m for _, m in old])))
            await files.delete_in(conn, old)
        await conn.execute(delete(media_uploads).where(media_uploads.c.uploaded_at < cutoff))
        return len(old)

    return prune


# --------------------------------------------------------------------------- reading a file


@dataclass(frozen=True, slots=True)
class OpenedMedia:
    """A stored file of the account, ready to stream: `chunks` yields its bytes (≤ 1 MiB each)."""

    record: MediaRecord
    chunks: AsyncIterator[bytes]

    @property
    def mime_type(self) -> str:
        return self.record.mime_type or "application/octet-stream"

    @property
    def size(self) -> int:
        return self.record.size or 0


async def open_media(
    engine: AsyncEngine, files: MediaFiles, *, account_id: str, media_id: str
) -> OpenedMedia | None:
    """The account's stored file `media_id` as a stream with its type and size; None when the
    account has no such file, or it is not (yet) downloaded."""
    async with engine.connect() as conn:
        record = await get_media(conn, account_id=account_id, media_id=media_id)
    if record is None or record.state != READY:
        return None
    return OpenedMedia(record, files.open(account_id, media_id))


# --------------------------------------------------------------------------- media sends


async def check_media_send(
    send: SendRequest, *, conn: AsyncConnection, account_id: str, policy: EgressPolicy | None
) -> SendRequest:
    """A parsed media send checked against what only the server knows: a `media_id` is a
    file of the account that fits the media_type; a `media_url` that names a literal address
    the egress policy refuses is `url_not_allowed` now rather than a failure later (`policy`
    None: checked when fetched)."""
    data = send.content.data or {}
    media_id = data.get("media_id")
    if isinstance(media_id, str):
        record = await get_media(conn, account_id=account_id, media_id=media_id)
        ready = record is not None and record.state == READY
        return check_stored(
            send,
            mime_type=record.mime_type if ready and record else None,
            size=record.size if ready and record else None,
            sha256=record.sha256 if ready and record else None,
        )
    url = data.get("media_url")
    if isinstance(url, str) and policy is not None:
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            raise UrlNotAllowed(
                "media_url carries a user name or password (user:password@host); wagate would "
                "store and show them in clear: use a link that needs none.",
                field="media_url",
            )
        host = parts.hostname or ""
        literal = literal_address(host)
        why = policy.refusal(literal) if literal is not None else None
        if why is not None:
            raise UrlNotAllowed(
                f"media_url: {host} is {why}; wagate fetches media only from public "
                f"addresses ({ALLOW_HINT}).",
                field="media_url",
            )
    return send
