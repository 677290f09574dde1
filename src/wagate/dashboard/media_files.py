"""The account's stored files, as the dashboard reads them: what a thread needs to draw them
(type, size, name, download state) and the bytes themselves for `/media/{id}`.

Both go through this one module so that pages never touch the storage directly: every read is
scoped to the signed-in user's account, and another account's id is simply not found.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from wagate.api.deps import Services
from wagate.dashboard.kinds import MediaFile
from wagate.store import media as media_store
from wagate.store.media import OpenedMedia
from wagate.store.tables import media

__all__ = ["OpenedMedia", "describe", "open_file"]

MAX_IDS = 500  # a thread shows at most a few hundred messages


async def describe(
    services: Services, *, account_id: str, ids: Iterable[str]
) -> dict[str, MediaFile]:
    """What the store knows about each of `ids` that is the account's (others are left out)."""
    wanted = sorted({i for i in ids if i})[:MAX_IDS]
    if not wanted:
        return {}
    query = select(
        media.c.id,
        media.c.mime_type,
        media.c.size,
        media.c.filename,
        media.c.state,
        media.c.error,
    ).where(media.c.account_id == account_id, media.c.id.in_(wanted))
    async with services.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {
        row.id: MediaFile(
            row.id,
            mime_type=row.mime_type,
            size=row.size,
            filename=row.filename,
            state=row.state,
            error=row.error,
        )
        for row in rows
    }


async def open_file(services: Services, *, account_id: str, media_id: str) -> OpenedMedia | None:
    """The account's file `media_id` opened for reading, or None when it has no such file (or
    it is not downloaded yet). Iterate its `chunks` to the end so that the file is closed."""
    return await media_store.open_media(
        services.engine, services.media_files, account_id=account_id, media_id=media_id
    )
