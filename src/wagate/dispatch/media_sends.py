"""Getting a media message's file to Meta before it is sent (SPEC §8).

    media_id   the account's stored file (store/media.py)
    media_url  fetched now under the egress policy (size capped at the media_type's limit,
               time at `MEDIA_TIMEOUT`), sniffed, checked against the limits, and kept as a
               file of the account (origin `url`), so what was sent can be shown

then Meta's media id for the same bytes through the same number is reused when Meta still
keeps it (`media_uploads`, 29 days), or the file is uploaded (`POST /{phone_number_id}/media`,
streamed from the store) and its id remembered. The message then goes out by that id.

A link that cannot be fetched, or whose content WhatsApp would refuse, fails the message with
our own code (`media_unreachable`, `media_too_large`, `media_type_not_supported`,
`media_type_mismatch`, `url_not_allowed`) instead of Meta's opaque 131053 later; a link that is
down (a timeout, a 5xx) is tried again with the message's backoff, `URL_ATTEMPTS` times.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.clock import Clock
from wagate.cloud.client import CloudApiError, CloudMedia
from wagate.config import Settings
from wagate.domain.media import MEDIA_KINDS, check_for, mime_name, sniff
from wagate.domain.models import MessageContent
from wagate.egress import EgressRefused
from wagate.ids import new_id
from wagate.store import media as media_store
from wagate.store.accounts import Channel
from wagate.store.db import write_tx
from wagate.store.media_files import MediaFileMissing, MediaFiles, TooLarge
from wagate.store.outbox import Claim, Failed, Retry

log = logging.getLogger("wagate.media")

URL_ATTEMPTS = 3
"""Tries of a media_url that is down (timeouts, 5xx) before the message fails."""
RETRY_SECONDS = 30.0


class MediaSends:
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

    async def prepare(
        self, claim: Claim, channel: Channel, content: MessageContent
    ) -> MessageContent | Failed | Retry:
        """The content with Meta's media id in `data["meta_media_id"]`, or why not."""
        data = dict(content.data or {})
        try:
            if data.get("media_url"):
                record = await self._fetch(claim, channel, data)
            else:
                record = await self._stored(channel, data)
        except _Refused as refused:
            return refused.outcome(claim, self.clock.now())
        if isinstance(record, Failed | Retry):
            return record
        meta_id = await self._meta_id(claim, channel, record)
        if isinstance(meta_id, Failed | Retry):
            return meta_id
        data["meta_media_id"] = meta_id
        data["sha256"] = record.sha256
        return replace(content, data=data)

    async def forget(self, channel: Channel, content: MessageContent) -> None:
        """Meta refused the media id (it expired early): upload again at the next try."""
        sha = (content.data or {}).get("sha256")
        if sha:
            async with write_tx(self.engine) as conn:
                await media_store.forget_meta_id(conn, channel_id=channel.id, sha256=sha)

    # ------------------------------------------------------------------ the file

    async def _stored(self, channel: Channel, data: dict[str, object]) -> media_store.MediaRecord:
        media_id = str(data.get("media_id") or "")
        async with self.engine.connect() as conn:
            record = await media_store.get_media(
                conn, account_id=channel.account_id, media_id=media_id
            )
        if record is None or record.state != media_store.READY or not record.sha256:
            raise _Refused(
                "media_not_found",
                "Media not found",
                f"The file {media_id} is no longer kept (retention deleted it, say).",
            )
        return record

    async def _fetch(
        self, claim: Claim, channel: Channel, data: dict[str, object]
    ) -> media_store.MediaRecord:
        url = str(data["media_url"])
        media_type = str(data["media_type"])
        kind = MEDIA_KINDS[media_type]
        limit = kind.limit(animated=True)
        media_id = new_id("med")
        try:
            async with self.cloud.fetch(url) as response:
                if not response.is_success:
                    status = response.status_code
                    why = f"Fetching media_url answered HTTP {status}."
                    if 300 <= status < 400:
                        why = (
                            f"media_url answered with a redirect (HTTP {status}); wagate does "
                            "not follow redirects: give the file's final https:// URL."
                        )
                    raise _Refused(
                        "media_unreachable",
                        "Media unreachable",
                        why,
                        transient=status >= 500 or status == 429,
                    )
                stored = await self.files.put(
                    channel.account_id, media_id, response.aiter_bytes(), limit=limit
                )
        except TooLarge:
            raise _Refused(
                "media_too_large",
                "Media too large",
                f"The file at media_url is larger than WhatsApp takes for a {media_type} "
                f"({limit:,} bytes).",
            ) from None
        except EgressRefused as exc:
            raise _Refused("url_not_allowed", "URL not allowed", str(exc)) from None
        except httpx.HTTPError as exc:
            raise _Refused(
                "media_unreachable",
                "Media unreachable",
                f"Fetching media_url failed: {type(exc).__name__}: {exc}"[:500],
                transient=True,
            ) from None
        sniffed = sniff(stored.head)
        problem = None
        if sniffed.mime_type is None:
            problem = ("media_type_not_supported", f"The file at media_url is {sniffed.described}.")
        else:
            _, errors = check_for(
                media_type, sniffed.mime_type, stored.size, sniffed.animated, field="media_url"
            )
            if errors:
                problem = (errors[0].code, errors[0].message)
        if problem is not None:
            await self.files.delete(channel.account_id, [media_id])
            raise _Refused(problem[0], "Media refused", problem[1])
        async with write_tx(self.engine) as conn:
            await media_store.add_media(
                conn,
                id=media_id,
                account_id=channel.account_id,
                media_type=media_type,
                mime_type=sniffed.mime_type,
                size=stored.size,
                sha256=stored.sha256,
                filename=data.get("filename"),
                origin="url",
                created_at=self.clock.now(),
            )
            record = await media_store.get_media(
                conn, account_id=channel.account_id, media_id=media_id
            )
        assert record is not None
        log.info(
            "fetched media_url of %s: %s, %d bytes",
            claim.message_id,
            mime_name(sniffed.mime_type),
            stored.size,
        )
        return record

    # ------------------------------------------------------------------ Meta's id

    async def _meta_id(
        self, claim: Claim, channel: Channel, record: media_store.MediaRecord
    ) -> str | Failed | Retry:
        assert record.sha256 is not None and record.mime_type is not None
        now = self.clock.now()
        async with self.engine.connect() as conn:
            cached = await media_store.cached_meta_id(
                conn, channel_id=channel.id, sha256=record.sha256, now=now
            )
        if cached is not None:
            return cached
        try:
            meta_id = await self.cloud.upload(
                graph_url=channel.graph_url,
                version=self.settings.graph_api_version,
                phone_number_id=channel.phone_number_id,
                access_token=channel.access_token,
                chunks=self.files.open(channel.account_id, record.id),
                size=record.size or 0,
                mime_type=record.mime_type,
                filename=record.filename or f"{record.media_type}",
            )
        except MediaFileMissing:
            return _Refused(
                "media_not_found", "Media not found", f"The file {record.id} is no longer kept."
            ).outcome(claim, now)
        except CloudApiError as error:
            if error.http_status is None or (error.http_status or 0) >= 500:
                return _Refused(
                    "media_upload_failed", "Media upload failed", str(error), transient=True
                ).outcome(claim, now)
            return Failed(
                claim.message_id,
                code="media_upload_failed",
                title=error.title,
                details=f"Meta refused the file: {error}",
                meta_code=error.meta_code,
            )
        async with write_tx(self.engine) as conn:
            await media_store.remember_meta_id(
                conn, channel_id=channel.id, sha256=record.sha256, meta_media_id=meta_id, now=now
            )
        return meta_id


class _Refused(Exception):
    def __init__(self, code: str, title: str, details: str, *, transient: bool = False) -> None:
        super().__init__(details)
        self.code = code
        self.title = title
        self.details = details
        self.transient = transient

    def outcome(self, claim: Claim, now: datetime) -> Failed | Retry:
        if self.transient and claim.attempts < URL_ATTEMPTS:
            return Retry(
                claim.message_id,
                available_at=now + timedelta(seconds=RETRY_SECONDS * claim.attempts),
                title=self.title,
                details=self.details,
            )
        return Failed(claim.message_id, code=self.code, title=self.title, details=self.details)
