"""Downloading the files customers send (SPEC §8): as soon as their webhook is stored, every
worker that runs a dispatcher takes due downloads from the `media` table (leased, so a crashed
worker's come back), asks Meta for the file's URL (`GET /{media_id}`), downloads it with the
channel's token under the egress policy (size capped at 100 MB, time at `media_timeout`),
checks it against the webhook's `sha256` and keeps it in the media store.

A download that fails for a while is retried with backoff (2 s, 4 s, … up to 5 minutes, for
`MAX_ATTEMPTS` tries: about half an hour; Meta asks for the URL again each time, since its URLs
last minutes); one that keeps failing, or that Meta says does not exist, is marked `failed` with
the reason (`error_code`, `error`), which the API and the dashboard show.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.clock import Clock
from wagate.cloud.client import CloudApiError, CloudMedia
from wagate.config import Settings
from wagate.domain.media import MAX_UPLOAD, sniff
from wagate.store import accounts as account_store
from wagate.store import media as media_store
from wagate.store.db import write_tx
from wagate.store.media import Download
from wagate.store.media_files import MediaFiles, TooLarge

log = logging.getLogger("wagate.media")

MAX_ATTEMPTS = 10
LEASE = timedelta(minutes=10)
BATCH = 4
IDLE_POLL = 0.5
MAX_BACKOFF = 300.0


class DownloadFailed(Exception):
    def __init__(self, code: str, text: str, *, permanent: bool = False) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.permanent = permanent


def sha256_matches(expected: str, hex_digest: str) -> bool:
    """Meta gives a file's SHA-256 as hex or as base64; either must match."""
    expected = expected.strip()
    if expected.lower() == hex_digest:
        return True
    return expected == base64.b64encode(bytes.fromhex(hex_digest)).decode()


class MediaDownloader:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        settings: Settings,
        clock: Clock,
        cloud: CloudMedia,
        files: MediaFiles,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.cloud = cloud
        self.files = files
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._in_flight = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="wagate-media-downloads")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                done = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("media downloads failed; trying again shortly")
                done = 0
            if done == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=IDLE_POLL)

    async def run_once(self) -> int:
        """Take the due downloads (a few) and make them; how many were taken."""
        async with write_tx(self.engine) as conn:
            jobs = await media_store.claim_downloads(
                conn, now=self.clock.now(), lease=LEASE, limit=BATCH
            )
        if jobs:
            self._in_flight += len(jobs)
            try:
                await asyncio.gather(*(self._one(job) for job in jobs))
            finally:
                self._in_flight -= len(jobs)
        return len(jobs)

    async def drain(self, timeout: float = 30.0) -> None:
        """Make every download that is due now (for tests), and wait for those this process's
        own loop (`start`) had already taken."""
        async with asyncio.timeout(timeout):
            while True:
                if await self.run_once():
                    continue
                if not self._in_flight:
                    return
                await asyncio.sleep(0.01)  # the loop's own downloads, under way

    async def _one(self, job: Download) -> None:
        try:
            mime, size, digest = await self._fetch(job)
        except DownloadFailed as failure:
            await self._failed(job, failure)
            return
        except Exception as exc:  # a bug must not stop the other downloads
            log.exception("media download %s failed", job.media_id)
            await self._failed(job, DownloadFailed("media_download_failed", type(exc).__name__))
            return
        async with write_tx(self.engine) as conn:
            await media_store.download_done(
                conn, media_id=job.media_id, mime_type=mime, size=size, sha256=digest
            )
        log.info("downloaded %s (%d bytes)", job.media_id, size)

    async def _failed(self, job: Download, failure: DownloadFailed) -> None:
        async with write_tx(self.engine) as conn:
            if failure.permanent or job.attempts >= MAX_ATTEMPTS:
                text = failure.text
                if not failure.permanent:
                    text = f"Gave up after {job.attempts} attempts; last error: {text}"
                await media_store.download_failed(
                    conn, media_id=job.media_id, code=failure.code, error=text
                )
                log.warning("media %s not downloaded: %s", job.media_id, text)
            else:
                delay = min(MAX_BACKOFF, 2.0**job.attempts)
                await media_store.download_retry(
                    conn,
                    media_id=job.media_id,
                    at=self.clock.now() + timedelta(seconds=delay),
                    code=failure.code,
                    error=failure.text,
                )

    async def _fetch(self, job: Download) -> tuple[str, int, str]:
        async with self.engine.connect() as conn:
            channel = await account_store.get_channel(conn, channel_id=job.channel_id)
        if channel is None:
            raise DownloadFailed("media_unavailable", "The channel is gone.", permanent=True)
        try:
            info = await self.cloud.info(
                graph_url=channel.graph_url,
                version=self.settings.graph_api_version,
                media_id=job.meta_media_id,
                access_token=channel.access_token,
            )
        except CloudApiError as error:
            permanent = error.http_status in (400, 403, 404) or error.refused_by_egress_policy
            raise DownloadFailed(
                "media_unavailable" if permanent else "media_download_failed",
                f"Meta's media lookup: {error}",
                permanent=permanent,
            ) from None
        try:
            async with self.cloud.download(info.url, channel.access_token) as response:
                if not response.is_success:
                    raise DownloadFailed(
                        "media_download_failed",
                        f"The download answered HTTP {response.status_code}.",
                    )
                stored = await self.files.put(
                    job.account_id, job.media_id, response.aiter_bytes(), limit=MAX_UPLOAD
                )
        except TooLarge:
            raise DownloadFailed(
                "media_too_large", "The file is larger than 100 MB.", permanent=True
            ) from None
        except httpx.HTTPError as exc:
            raise DownloadFailed(
                "media_download_failed", f"{type(exc).__name__}: {exc}"[:500]
            ) from None
        expected = job.sha256 or info.sha256
        if expected and not sha256_matches(expected, stored.sha256):
            await self.files.delete(job.account_id, [job.media_id])
            raise DownloadFailed(
                "sha256_mismatch",
                "The downloaded file's SHA-256 is not the one Meta's webhook gave; it was not "
                "kept.",
            )
        mime = sniff(stored.head).mime_type or info.mime_type or job.mime_type
        return (mime or "application/octet-stream"), stored.size, stored.sha256
