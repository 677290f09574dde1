"""The dispatcher: claims due messages from the outbox and hands them to the Cloud API.

Claims are leases, taken in batches; sends run concurrently (one at a time per recipient, by
the claim's lane rule); what Meta answered is recorded in batches by one committer, so under
load many messages share one transaction. Delivery is at-least-once: a message leaves the
outbox only in the transaction that records Meta's answer, so a crash between Meta's 200 and
that commit sends it again when the lease ends (rare; the window is one round trip plus one
batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate import metrics
from wagate.clock import Clock
from wagate.cloud.client import CloudApiError, CloudClient, CloudMedia
from wagate.cloud.payloads import build_message_payload
from wagate.config import Settings
from wagate.dispatch.callbacks import CallbackSender
from wagate.dispatch.drain import drain
from wagate.dispatch.heartbeat import Heartbeat
from wagate.dispatch.media_downloads import MediaDownloader
from wagate.dispatch.media_sends import MediaSends
from wagate.dispatch.pacers import make_pacer
from wagate.dispatch.pacing import Pacer
from wagate.dispatch.pacing_share import RESERVE_AHEAD
from wagate.dispatch.pruner import Pruner
from wagate.domain import meta_errors
from wagate.domain.failures import error_slug
from wagate.domain.models import MessageContent, MessageType
from wagate.domain.window import window_expires_at, window_open
from wagate.ids import new_id
from wagate.logs import log_outcome
from wagate.store import accounts as account_store
from wagate.store import outbox as outbox_store
from wagate.store.accounts import Channel
from wagate.store.db import write_tx
from wagate.store.media_files import MediaFiles, media_files_for
from wagate.store.messages import iso
from wagate.store.outbox import Claim, Failed, Outcome, Retry, Sent
from wagate.store.statuses import StatusChange

log = logging.getLogger("wagate.dispatch")

CHANNEL_CACHE_SECONDS = 30.0
IDLE_CLAIM_INTERVAL = 0.05
# Outcomes are committed at most this often (seconds). A paced channel finishes its sends one by
# one (80/s: one every 12.5 ms), and a transaction per send would cost more CPU than the send and
# hold up the accepts queued behind each one for the write lock; waiting this long gathers them.
# Under load a commit takes longer than this anyway, so it only paces commits at low rates.
OUTCOME_COMMIT_SPACING = 0.05
# While the database cannot take outcomes, they are tried again this often (seconds).
RECORD_RETRY_SECONDS = 0.5
THROUGHPUT_REACHED = 130429
MEDIA_UPLOAD_ERROR = 131053
# Meta counts sends per second as they arrive. A send that starts late (its event loop was busy
# when its slot came) bunches up with the next ones, so: slots are spaced for a share of the
# rate (WAGATE_PACE_HEADROOM, 96 % by default), and a send that wakes more than MAX_LATENESS
# after its slot takes a new one. Then any second holds at most 0.96 x rate x (1 + 0.03) < rate
# starts, with room left for network jitter.
MAX_LATENESS = 0.03


class Dispatcher:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        settings: Settings,
        clock: Clock,
        cloud: CloudClient,
        on_changes: Callable[[list[StatusChange]], Awaitable[None]] | None = None,
        pacer: Pacer | None = None,
        callbacks: CallbackSender | None = None,
        media: CloudMedia | None = None,
        media_files: MediaFiles | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.cloud = cloud
        self.on_changes = on_changes
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_id('w')[-8:]}"
        self._own_pacer = pacer is None
        self.heartbeat = Heartbeat(engine, self.owner)
        self.pacer = pacer or make_pacer(settings, engine=engine, share=lambda: self.heartbeat.live)
        # Callbacks to the businesses go out wherever messages do, started and stopped with us;
        # so does the retention pruner.
        self.callbacks = callbacks or CallbackSender(engine=engine, settings=settings, clock=clock)
        self.pruner = Pruner(engine=engine, settings=settings, clock=clock)
        # Customers' files are downloaded wherever messages are sent from; media_url files are
        # fetched and uploaded to Meta by the sends themselves (dispatch/media_sends.py).
        self.media = media or CloudMedia(cloud.http)
        self.media_files = media_files or media_files_for(settings, engine)
        self.media_sends = MediaSends(
            engine=engine, settings=settings, clock=clock, cloud=self.media, files=self.media_files
        )
        self.downloads = MediaDownloader(
            engine=engine, settings=settings, clock=clock, cloud=self.media, files=self.media_files
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pacing_turns: dict[str, asyncio.Lock] = {}
        self._committer: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._outcomes: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._storage_down = False
        self._claims_failing = False
        self._outcomes_ready = asyncio.Event()
        self._channels: dict[str, tuple[float, Channel]] = {}
        self._rng = random.Random()
        self._stopping = False
        self._claim_limit = 1  # what the last claim asked for

    # ------------------------------------------------------------------ lifecycle

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="wagate-dispatcher")
        self.callbacks.start()
        self.pruner.start()
        self.downloads.start()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.heartbeat.stop()
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
            self._committer = None
        if self._own_pacer:
            await self.pacer.aclose()
        await self.callbacks.stop()
        await self.pruner.stop()
        await self.downloads.stop()

    async def _run(self) -> None:
        await self.heartbeat.start()
        while not self._stopping:
            try:
                claimed = await self.run_once()
            except asyncio.CancelledError:
                raise
            except DBAPIError as exc:  # the database is away: say so once, not every second
                if not self._claims_failing:
                    log.warning("cannot claim (%s); retrying every second", type(exc).__name__)
                self._claims_failing = True
                await asyncio.sleep(1.0)
                claimed = 0
            except Exception:
                log.exception("dispatcher cycle failed; retrying shortly")
                await asyncio.sleep(1.0)
                claimed = 0
            else:
                if self._claims_failing:
                    log.warning("claiming again")
                self._claims_failing = False
            if claimed < self._claim_limit:
                # Nothing (more) was claimable: this claim took all that was due. A wake-up (a
                # new message, a finished send) may change that, but under load they come
                # hundreds of times a second, and each claim is a write transaction that
                # accepts would queue behind: try at most every IDLE_CLAIM_INTERVAL.
                self._wake.clear()
                await asyncio.sleep(IDLE_CLAIM_INTERVAL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.5)

    async def run_once(self) -> int:
        """Claim one batch and start sending it; returns how many were claimed."""
        free = self.settings.dispatch_concurrency - len(self._inflight)
        # While most slots are taken (sends waiting for the channel's pace), slots free up one
        # at a time: claiming each on its own would cost a write transaction per message, which
        # accepts and webhooks queue behind. Wait until half a batch of them is free instead.
        enough = max(1, min(self.settings.dispatch_batch, self.settings.dispatch_concurrency) // 2)
        if free <= 0 or (free < enough and self._inflight):
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.05)
            return 0
        self._claim_limit = min(free, self.settings.dispatch_batch)
        # A claim reads the next lanes of a table of lane heads (store/outbox_lanes.py), so it
        # costs the same however many recipients wait; it runs on the event loop.
        started = time.perf_counter()
        async with write_tx(self.engine) as conn:
            claims = await outbox_store.claim(
                conn,
                owner=self.owner,
                now=self.clock.now(),
                lease=timedelta(seconds=self.settings.lease_seconds),
                limit=self._claim_limit,
            )
        metrics.observe_claim(time.perf_counter() - started)
        lease_ends = time.monotonic() + self.settings.lease_seconds
        for claim in claims:
            task = asyncio.create_task(self._deliver(claim, lease_ends))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(claims)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())
        self._wake.set()  # a slot is free, and the lane may have a next message

    async def drain(self, timeout: float = 30.0) -> None:
        """Run until the outbox has nothing due (for tests and the CLI)."""
        await drain(self.run_once, self._inflight, timeout)

    # ------------------------------------------------------------------ one message

    async def _channel(self, channel_id: str) -> Channel:
        cached = self._channels.get(channel_id)
        if cached is not None and time.monotonic() - cached[0] < CHANNEL_CACHE_SECONDS:
            return cached[1]
        async with self.engine.connect() as conn:
            channel = await account_store.get_channel(conn, channel_id=channel_id)
        if channel is None:
            raise LookupError(f"channel {channel_id} is gone")
        self._channels[channel_id] = (time.monotonic(), channel)
        return channel

    async def _deliver(self, claim: Claim, lease_ends: float) -> None:
        outcome = await self._attempt(claim, lease_ends)
        if outcome is not None:
            log_outcome(outcome)
            await self._record(outcome)

    async def _attempt(self, claim: Claim, lease_ends: float) -> Outcome | None:
        content = MessageContent.from_dict(claim.content)
        now = self.clock.now()
        free_form = content.type.free_form
        if free_form and not window_open(claim.last_inbound_at, now):
            closed = window_expires_at(claim.last_inbound_at)
            tried = claim.attempts - 1
            return Failed(
                claim.message_id,
                code="outside_service_window",
                title="Customer service window closed",
                details=(
                    "The customer's 24-hour window closed"
                    + (f" at {iso(closed)}" if closed else "")
                    + (f" while retrying ({tried} failed attempts)" if tried else "")
                    + " before the message could be handed to WhatsApp; send a template instead."
                ),
                attempted=False,
            )
        channel = await self._channel(claim.channel_id)
        if content.type is MessageType.REACTION and not claim.reply_to_wamid:
            return Failed(
                claim.message_id,
                code="reaction_target_not_sent",
                title="Reacted-to message not sent",
                details=f"The message {(content.data or {}).get('message_id')} this reaction "
                "is on was never handed to WhatsApp (it failed, or was removed), so there is "
                "nothing to react to.",
                attempted=False,
            )
        if content.type is MessageType.MEDIA:
            prepared = await self.media_sends.prepare(claim, channel, content)
            if not isinstance(prepared, MessageContent):
                return prepared
            content = prepared
        try:
            payload = build_message_payload(
                to=claim.phone, content=content, reply_to_wamid=claim.reply_to_wamid
            )
        except ValueError as exc:  # stored content the builder cannot send (never accepted)
            return Failed(
                claim.message_id,
                code="invalid_message",
                title="Message cannot be built",
                details=str(exc),
                attempted=False,
            )
        if self.settings.pair_interval > 0:
            # Meta's pair rate: past the burst, a recipient gets one message per interval. A
            # message that would exceed it waits in the queue, not in a worker slot.
            wait = await self.pacer.try_pair(channel.id, claim.phone)
            if wait > 0:
                metrics.record_retry("pair_rate")
                return Retry(
                    claim.message_id,
                    available_at=now + timedelta(seconds=wait),
                    attempted=False,
                )
        await self._channel_slot(channel)
        # Sending after our lease ran out could race another dispatcher that claimed the
        # message since; leave it to that one (or to our next claim).
        if time.monotonic() > lease_ends - self.settings.send_timeout:
            log.warning("lease on %s ran out while pacing; not sending", claim.message_id)
            metrics.record_retry("lease_expired")
            return None
        started = time.monotonic()
        try:
            result = await self.cloud.send_message(
                graph_url=channel.graph_url,
                version=self.settings.graph_api_version,
                phone_number_id=channel.phone_number_id,
                access_token=channel.access_token,
                payload=payload,
            )
        except CloudApiError as error:
            if error.meta_code == THROUGHPUT_REACHED:
                await self.pacer.throttled(channel.id)
            if content.type is MessageType.MEDIA and error.meta_code == MEDIA_UPLOAD_ERROR:
                # Meta no longer knows the media id we reused: upload again, once.
                await self.media_sends.forget(channel, content)
                if claim.attempts < 2:
                    return Retry(
                        claim.message_id,
                        available_at=self.clock.now() + timedelta(seconds=1),
                        meta_code=error.meta_code,
                        title=error.title,
                        details=error.details,
                    )
            outcome = self._after_error(claim, error)
            seconds = time.monotonic() - started
            if isinstance(outcome, Failed):
                metrics.record_send("failed", error.meta_code, seconds)
            else:
                metrics.record_send("retried", error.meta_code, seconds)
            return outcome
        metrics.record_send("accepted", None, time.monotonic() - started)
        return Sent(claim.message_id, result.wamid)

    async def _channel_slot(self, channel: Channel) -> None:
        loop = asyncio.get_running_loop()
        rate = channel.mps * self.settings.pace_headroom
        # One reservation at a time per number in this worker, and none more than RESERVE_AHEAD
        # before its slot: what this worker holds is always that close (so the pacer can hand
        # over when Redis goes or comes back: pacing_share.py), and the sends waiting for the
        # number queue here rather than each asking the pacer again and again.
        turn = self._pacing_turns.setdefault(channel.id, asyncio.Lock())
        while True:
            async with turn:
                while True:
                    try:
                        slot = await self.pacer.channel_slot(
                            channel.id, rate, max_wait=RESERVE_AHEAD
                        )
                    except DBAPIError:  # the shared pace is in the database, which is away
                        await asyncio.sleep(RECORD_RETRY_SECONDS)
                        continue
                    if slot.granted:
                        break
                    await asyncio.sleep(slot.wait - RESERVE_AHEAD)
            start = loop.time() + slot.wait
            if slot.wait > 0:
                await asyncio.sleep(slot.wait)
            if loop.time() - start <= MAX_LATENESS:
                return

    def _after_error(self, claim: Claim, error: CloudApiError) -> Outcome:
        if error.refused_by_egress_policy:
            # The channel's Graph URL leads somewhere wagate may not go; asking again cannot
            # change that (the operator can, with WAGATE_EGRESS_ALLOW and a restart).
            return Failed(
                claim.message_id, code="url_not_allowed", title=error.title, details=error.details
            )
        retry_class = meta_errors.classify(error.meta_code, error.http_status)
        if retry_class is meta_errors.RetryClass.PERMANENT:
            return Failed(
                claim.message_id,
                code=error_slug(error.meta_code),
                title=error.title,
                details=error.details,
                meta_code=error.meta_code,
            )
        if claim.attempts >= self.settings.max_attempts:
            return Failed(
                claim.message_id,
                code="retries_exhausted",
                title=error.title,
                details=(
                    f"Gave up after {claim.attempts} attempts; last error: "
                    f"{error.details or error.title}"
                ),
                meta_code=error.meta_code,
            )
        delay = meta_errors.backoff_seconds(
            claim.attempts,
            retry_class,
            error.meta_code,
            error.retry_after,
            self._rng,
            base=self.settings.retry_base_seconds,
        )
        metrics.record_retry(metrics.retry_reason(retry_class.value, error.meta_code, error.title))
        log.info(
            "message %s: %s (meta code %s), retry %d in %.1fs",
            claim.message_id,
            retry_class.value,
            error.meta_code,
            claim.attempts,
            delay,
            extra={
                "message_id": claim.message_id,
                "status": "retry",
                "retry_class": retry_class.value,
                "meta_code": error.meta_code,
                "attempt": claim.attempts,
                "retry_in": round(delay, 1),
            },
        )
        return Retry(
            claim.message_id,
            available_at=self.clock.now() + timedelta(seconds=delay),
            meta_code=error.meta_code,
            title=error.title,
            details=error.details,
        )

    # ------------------------------------------------------------------ group commit

    async def _record(self, outcome: Outcome) -> None:
        """Queue an outcome for the committer and wait until it is durable, so the lane's next
        message is claimed only after this one left the outbox."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outcomes.append((outcome, future))
        self._outcomes_ready.set()
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_loop(), name="wagate-committer")
        await future

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_commit = -OUTCOME_COMMIT_SPACING
        while True:
            await self._outcomes_ready.wait()
            self._outcomes_ready.clear()
            wait = last_commit + OUTCOME_COMMIT_SPACING - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            last_commit = loop.time()
            while self._outcomes:
                batch = self._outcomes[:500]
                del self._outcomes[:500]
                try:
                    async with write_tx(self.engine) as conn:
                        _, changes = await outbox_store.record_outcomes(
                            conn,
                            owner=self.owner,
                            outcomes=[o for o, _ in batch],
                            now=self.clock.now(),
                        )
                except Exception as exc:
                    self._keep_for_later(batch, exc)
                    await asyncio.sleep(RECORD_RETRY_SECONDS)
                    continue
                if self._storage_down:
                    self._storage_down = False
                    log.warning("storage is back: outcomes are recorded again")
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
                self.callbacks.wake()  # accepted and failed messages have status events
                if changes and self.on_changes is not None:
                    await self.on_changes(changes)

    def _keep_for_later(
        self, batch: list[tuple[Outcome, asyncio.Future[None]]], error: Exception
    ) -> None:
        """Nothing of `batch` was recorded (the database is away, say). What Meta answered is
        kept, and recorded once the database is back: a message that was sent must not go out
        again because the database blinked. (Recording checks that each lease is still ours, so
        one that another worker took meanwhile is not recorded twice.) The sends waiting here
        keep their slots, so no more is claimed meanwhile."""
        if not self._storage_down:
            self._storage_down = True
            log.warning(
                "could not record %d outcomes (%s); keeping them until the database is back",
                len(batch),
                type(error).__name__,
            )
        self._outcomes[:0] = batch
