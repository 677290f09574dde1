"""The account's stored files, as the dashboard reads them: what a thread needs to draw them
(type, size, name) and the bytes themselves for `/media/{id}`.

Both go through this one module so that pages never touch the storage directly: every read is
scoped to the signed-in user's account, and another account's id is simply not found.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from wagate.api.deps import Services
from wagate.dashboard.kinds import MediaFile


@dataclass(frozen=True, slots=True)
class OpenedMedia:
    """A stored file being read: its chunks, type, size and name."""

    chunks: AsyncIterator[bytes]
    mime_type: str
    size: int | None
    filename: str | None = None


async def describe(
    services: Services, *, account_id: str, ids: Iterable[str]
) -> dict[str, MediaFile]:
    """What the store knows about each of `ids` that is the account's (others are left out)."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    return {}  # no media store on this branch yet: every file is "not downloaded yet"


async def open_file(services: Services, *, account_id: str, media_id: str) -> OpenedMedia | None:
    """The account's file `media_id` opened for reading, or None when it has no such file."""
    return None
