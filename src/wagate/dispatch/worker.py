"""The dispatcher: claims due messages from the outbox and hands them to the Cloud API.

Delivery is at-least-once: a message leaves the outbox only in the transaction that records
Meta's answer, so a crash between Meta's 200 and that commit sends it again when the lease ends
(rare, and the window for it is one HTTP round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.clock import Clock
from wagate.cloud.client import CloudApiError, CloudClient
from wagate.cloud.payloads import build_message_payload
from wagate.config import Settings
from wagate.dispatch.pacing import ChannelPacer
from wagate.domain import meta_errors
from wagate.domain.failures import error_slug
from wagate.domain.models import MessageContent, MessageType
from wagate.domain.window import window_expires_at, window_open
from wagate.ids import new_id
from wagate.store import accounts as account_store
from wagate.store import messages as message_store
from wagate.store import outbox as outbox_store
from wagate.store.accounts import Channel
from wagate.store.outbox import Claim

log = logging.getLogger("wagate.dispatch")


class Dispatcher:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        settings: Settings,
        clock: Clock,
        cloud: CloudClient,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.cloud = cloud
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_id('w')[-8:]}"
        self.pacer = ChannelPacer()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.dispatch_concurrency)
        self._channels: dict[str, Channel] = {}
        self._rng = random.Random()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="wagate-dispatcher")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                claimed = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher cycle failed; retrying shortly")
                claimed = 0
            if claimed == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.5)

    async def run_once(self) -> int:
        """Claim one batch and start sending it; returns how many were claimed."""
        free = self.settings.dispatch_concurrency - len(self._inflight)
        if free <= 0:
            await asyncio.sleep(0.01)
            return 0
        async with self.engine.begin() as conn:
            claims = await outbox_store.claim(
                conn,
                owner=self.owner,
                now=self.clock.now(),
                lease=timedelta(seconds=self.settings.lease_seconds),
                limit=min(free, self.settings.dispatch_batch),
            )
        lease_ends = asyncio.get_running_loop().time() + self.settings.lease_seconds
        for claim in claims:
            task = asyncio.create_task(self._deliver(claim, lease_ends))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(claims)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())
        self._wake.set()  # a lane may have a next message now

    async def drain(self, timeout: float = 30.0) -> None:
        """Run until the outbox has nothing due (for tests and the CLI)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            claimed = await self.run_once()
            if self._inflight:
                await asyncio.wait(self._inflight, timeout=max(0.0, deadline - loop.time()))
            elif claimed == 0:
                return

    async def _channel(self, channel_id: str) -> Channel:
        channel = self._channels.get(channel_id)
        if channel is None:
            async with self.engine.connect() as conn:
                channel = await account_store.get_channel(conn, channel_id=channel_id)
            if channel is None:
                raise LookupError(f"channel {channel_id} is gone")
            self._channels[channel_id] = channel
        return channel

    async def _deliver(self, claim: Claim, lease_ends: float) -> None:
        async with self._slots:
            channel = await self._channel(claim.channel_id)
            content = MessageContent.from_dict(claim.content)
            if content.type in (MessageType.TEXT, MessageType.INTERACTIVE) and not (
                await self._window_still_open(claim)
            ):
                return
            reply_to_wamid = await self._reply_to_wamid(claim)
            payload = build_message_payload(
                to=claim.phone, content=content, reply_to_wamid=reply_to_wamid
            )
            await self.pacer.acquire(channel.id, channel.mps)
            # Sending after our lease ran out could race another dispatcher that claimed the
            # message since; leave it to that one (or to our next claim).
            if asyncio.get_running_loop().time() > lease_ends - self.settings.send_timeout:
                log.warning("lease on %s ran out while pacing; not sending", claim.message_id)
                return
            try:
                result = await self.cloud.send_message(
                    graph_url=channel.graph_url,
                    version=self.settings.graph_api_version,
                    phone_number_id=channel.phone_number_id,
                    access_token=channel.access_token,
                    payload=payload,
                )
            except CloudApiError as error:
                await self._handle_error(claim, error)
                return
            async with self.engine.begin() as conn:
                recorded = await outbox_store.record_accepted(
                    conn,
                    message_id=claim.message_id,
                    owner=self.owner,
                    wamid=result.wamid,
                    now=self.clock.now(),
                )
            if not recorded:
                log.warning("lease on %s was lost before Meta answered", claim.message_id)

    async def _window_still_open(self, claim: Claim) -> bool:
        async with self.engine.begin() as conn:
            last = await message_store.last_inbound_at(
                conn, channel_id=claim.channel_id, phone=claim.phone
            )
            now = self.clock.now()
            if window_open(last, now):
                return True
            closed = window_expires_at(last)
            await outbox_store.record_failed(
                conn,
                message_id=claim.message_id,
                owner=self.owner,
                code="outside_service_window",
                title="Customer service window closed",
                details=(
                    "The customer's 24-hour window closed"
                    + (f" at {message_store.iso(closed)}" if closed else "")
                    + " before the message could be handed to WhatsApp; send a template instead."
                ),
                meta_code=None,
                now=now,
                attempted=False,
            )
        return False

    async def _reply_to_wamid(self, claim: Claim) -> str | None:
        if not claim.reply_to:
            return None
        if not claim.reply_to.startswith("msg_"):
            return claim.reply_to
        async with self.engine.connect() as conn:
            return await outbox_store.wamid_of(conn, message_id=claim.reply_to)

    async def _handle_error(self, claim: Claim, error: CloudApiError) -> None:
        retry_class = meta_errors.classify(error.meta_code, error.http_status)
        now = self.clock.now()
        give_up = claim.attempts >= self.settings.max_attempts
        async with self.engine.begin() as conn:
            if retry_class is meta_errors.RetryClass.PERMANENT or give_up:
                details = error.details
                if give_up and retry_class is not meta_errors.RetryClass.PERMANENT:
                    details = f"Gave up after {claim.attempts} attempts; last error: {details}"
                await outbox_store.record_failed(
                    conn,
                    message_id=claim.message_id,
                    owner=self.owner,
                    code=error_slug(error.meta_code)
                    if retry_class is meta_errors.RetryClass.PERMANENT
                    else "retries_exhausted",
                    title=error.title,
                    details=details,
                    meta_code=error.meta_code,
                    now=now,
                )
                return
            delay = meta_errors.backoff_seconds(
                claim.attempts, retry_class, error.meta_code, error.retry_after, self._rng
            )
            await outbox_store.record_retry(
                conn,
                message_id=claim.message_id,
                owner=self.owner,
                available_at=now + timedelta(seconds=delay),
                meta_code=error.meta_code,
                title=error.title,
                details=error.details,
                now=now,
            )
        log.info(
            "message %s: %s (meta code %s), retry %d in %.1fs",
            claim.message_id,
            retry_class.value,
            error.meta_code,
            claim.attempts,
            delay,
        )
