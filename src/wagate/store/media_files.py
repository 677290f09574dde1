"""Where the bytes of stored media live, behind one interface (DESIGN: "media behind one seam").

    MediaFiles              put(account, media_id, chunks) → StoredBytes; open(); delete()
    ├── FolderMediaFiles    files in the data folder: media/<account>/<med_…>, mode 0600
    └── DatabaseMediaFiles  rows of `media_chunks` (≤ 1 MiB each) in PostgreSQL, so `api` and
                            `worker` processes on several machines share them

`media_files_for(settings, engine)` picks one: the database when it is PostgreSQL, the folder
otherwise. Both stream: a file is written chunk by chunk as it arrives and read chunk by
chunk, never held whole in memory. `put` counts and hashes what it writes and stops with
`TooLarge` past its cap, leaving nothing behind; a file is only ever referred to by its
`med_…` id (the row in `media`, store/media.py), never by a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wagate.config import Settings
from wagate.domain.media import SNIFF_BYTES
from wagate.store.tables import media_chunks

CHUNK = 1 << 20
"""Bytes per stored chunk (PostgreSQL) and per read."""
_SAFE_ID = re.compile(r"^[A-Za-z0-9_]{1,40}$")


class TooLarge(Exception):
    """More bytes than the caller's cap: nothing was kept. `size` is how many had come (at
    least), `head` the first of them."""

    def __init__(self, limit: int, size: int = 0, head: bytes = b"") -> None:
        super().__init__(f"more than {limit:,} bytes")
        self.limit = limit
        self.size = size
        self.head = head


class MediaFileMissing(Exception):
    """No bytes stored under that id."""


@dataclass(frozen=True, slots=True)
class StoredBytes:
    size: int
    sha256: str
    head: bytes  # the first SNIFF_BYTES, to tell the type


class _Tally:
    """Size, SHA-256 and the first bytes of what goes by, with a cap; `refine`, when given, may
    lower the cap once the first bytes are in (a PNG may be 5 MB, not 100)."""

    def __init__(self, limit: int, refine: Callable[[bytes], int] | None = None) -> None:
        self.limit = limit
        self.refine = refine
        self.size = 0
        self.hash = hashlib.sha256()
        self.head = bytearray()

    def add(self, chunk: bytes) -> None:
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
            if len(self.head) >= SNIFF_BYTES and self.refine is not None:
                self.limit = min(self.limit, self.refine(bytes(self.head)))
        self.size += len(chunk)
        if self.size > self.limit:
            raise TooLarge(self.limit, self.size, bytes(self.head))
        self.hash.update(chunk)

    def result(self) -> StoredBytes:
        return StoredBytes(self.size, self.hash.hexdigest(), bytes(self.head))


async def rechunk(chunks: AsyncIterable[bytes], size: int = CHUNK) -> AsyncIterator[bytes]:
    """The same bytes in pieces of `size` (the last one shorter), whatever came in."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _check_ids(account_id: str, media_id: str) -> None:
    if not (_SAFE_ID.match(account_id) and _SAFE_ID.match(media_id)):
        raise ValueError("account and media ids are letters, digits and underscores")


class MediaFiles(ABC):
    """The bytes of stored media, per account."""

    @abstractmethod
    async def put(
        self,
        account_id: str,
        media_id: str,
        chunks: AsyncIterable[bytes],
        *,
        limit: int,
        refine: Callable[[bytes], int] | None = None,
    ) -> StoredBytes:
        """Store what `chunks` yields under `media_id`; `TooLarge` (and nothing kept) past
        `limit` bytes, or past what `refine` says once it has seen the first bytes."""

    @abstractmethod
    def open(self, account_id: str, media_id: str) -> AsyncIterator[bytes]:
        """The stored bytes, chunk by chunk (`MediaFileMissing` when there are none)."""

    @abstractmethod
    async def delete(self, account_id: str, media_ids: Sequence[str]) -> None:
        """Forget these files (those already gone are skipped)."""

    async def delete_in(self, conn: AsyncConnection, pairs: Sequence[tuple[str, str]]) -> None:
        """Delete as part of the caller's transaction where the bytes are in the database;
        elsewhere, at once. `pairs` are (account_id, media_id)."""
        by_account: dict[str, list[str]] = {}
        for account_id, media_id in pairs:
            by_account.setdefault(account_id, []).append(media_id)
        for account_id, ids in by_account.items():
            await self.delete(account_id, ids)


class FolderMediaFiles(MediaFiles):
    """`<root>/<account_id>/<media_id>`: folders 0700, files 0600, written under a temporary
    name and renamed when complete, so a reader never sees half a file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, account_id: str, media_id: str) -> Path:
        _check_ids(account_id, media_id)
        return self.root / account_id / media_id

    async def put(
        self,
        account_id: str,
        media_id: str,
        chunks: AsyncIterable[bytes],
        *,
        limit: int,
        refine: Callable[[bytes], int] | None = None,
    ) -> StoredBytes:
        final = self.path(account_id, media_id)
        partial = final.with_name(f".{media_id}.part")
        tally = _Tally(limit, refine)
        handle = await asyncio.to_thread(_create, partial)
        try:
            async for chunk in rechunk(chunks):
                tally.add(chunk)
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(_finish, handle, partial, final)
        except BaseException:
            handle.close()
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        return tally.result()

    async def open(self, account_id: str, media_id: str) -> AsyncIterator[bytes]:
        path = self.path(account_id, media_id)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise MediaFileMissing(media_id) from None
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            handle.close()

    async def delete(self, account_id: str, media_ids: Sequence[str]) -> None:
        def unlink() -> None:
            for media_id in media_ids:
                with contextlib.suppress(FileNotFoundError):
                    self.path(account_id, media_id).unlink()

        await asyncio.to_thread(unlink)


def _create(path: Path) -> BinaryIO:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def _finish(handle: BinaryIO, partial: Path, final: Path) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    os.replace(partial, final)


_READ_CHUNK = select(media_chunks.c.data).where(
    media_chunks.c.media_id == bindparam("media_id"), media_chunks.c.seq == bindparam("seq")
)
_HAS_CHUNKS = select(media_chunks.c.seq).where(media_chunks.c.media_id == bindparam("media_id"))


class DatabaseMediaFiles(MediaFiles):
    """Chunks of at most `CHUNK` bytes in `media_chunks`, each inserted in its own short
    transaction as it arrives (a 100 MB upload holds no transaction open while the client
    sends) and read one at a time. The file's `media` row is written after its last chunk, so
    a file is only ever found complete; chunks of a put that failed are deleted at once."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def put(
        self,
        account_id: str,
        media_id: str,
        chunks: AsyncIterable[bytes],
        *,
        limit: int,
        refine: Callable[[bytes], int] | None = None,
    ) -> StoredBytes:
        _check_ids(account_id, media_id)
        tally = _Tally(limit, refine)
        seq = 0
        try:
            async for chunk in rechunk(chunks):
                tally.add(chunk)
                async with self.engine.begin() as conn:
                    await conn.execute(
                        insert(media_chunks), {"media_id": media_id, "seq": seq, "data": chunk}
                    )
                seq += 1
        except BaseException:
            with contextlib.suppress(Exception):
                await self.delete(account_id, [media_id])
            raise
        return tally.result()

    async def open(self, account_id: str, media_id: str) -> AsyncIterator[bytes]:
        _check_ids(account_id, media_id)
        seq = 0
        while True:
            async with self.engine.connect() as conn:
                data = await conn.scalar(_READ_CHUNK, {"media_id": media_id, "seq": seq})
            if data is None:
                if seq == 0:
                    async with self.engine.connect() as conn:
                        if await conn.scalar(_HAS_CHUNKS, {"media_id": media_id}) is None:
                            raise MediaFileMissing(media_id)
                return
            yield bytes(data)
            seq += 1

    async def delete(self, account_id: str, media_ids: Sequence[str]) -> None:
        if not media_ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(delete(media_chunks).where(media_chunks.c.media_id.in_(media_ids)))

    async def delete_in(self, conn: AsyncConnection, pairs: Sequence[tuple[str, str]]) -> None:
        ids = [media_id for _, media_id in pairs]
        if ids:
            await conn.execute(delete(media_chunks).where(media_chunks.c.media_id.in_(ids)))


def media_files_for(settings: Settings, engine: AsyncEngine) -> MediaFiles:
    """The database when it is PostgreSQL (shared by every machine), else the data folder."""
    if engine.dialect.name == "postgresql":
        return DatabaseMediaFiles(engine)
    return FolderMediaFiles(settings.data_dir.resolve() / "media")
