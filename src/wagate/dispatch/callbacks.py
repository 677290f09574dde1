"""The callbacks sender: claims due events from the callbacks outbox, POSTs each to its account's
callback URL signed at the moment of sending, and records what came of it.

It runs wherever the message dispatcher runs (`Dispatcher` starts and stops it). Claims are
leases taken in batches, one event per lane at a time; POSTs run concurrently (at most
`WAGATE_CALLBACK_CONCURRENCY`); results are recorded in batches by one committer. Any 2xx is a
delivery; anything else (another status, a redirect, a timeout, a refused connection) is
retried with backoff until the event is `WAGATE_CALLBACK_GIVE_UP_AFTER` seconds old, then kept
as a dead letter (status `failed`) for `POST /v1/callbacks/{id}/replay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate import __version__, metrics
from wagate.clock import Clock
from wagate.cloud.transport import AiohttpTransport
from wagate.config import Settings
from wagate.dispatch.drain import drain
from wagate.domain.callbacks import SIGNATURE_HEADER, RetryPolicy, next_attempt_at, sign
from wagate.ids import new_id
from wagate.net_errors import describe_failure
from wagate.store import callbacks as callback_store
from wagate.store.callbacks import Attempt, DueDelivery
from wagate.store.db import write_tx
from wagate.store.sqlite_inline import in_thread

log = logging.getLogger("wagate.callbacks")

IDLE_POLL_SECONDS = 0.25
DEPTH_EVERY_SECONDS = 5.0
STOP_GRACE_SECONDS = 2.0
LEASE_MARGIN_SECONDS = 30.0
MAX_ERROR_BODY = 300  # characters of a refusing receiver's answer kept in last_error
_READ_LIMIT = 64 * 1024  # bytes of an answer read (the rest is dropped with the connection)


class CallbackSender:
    """`http`, when given, is used as is (and not closed); otherwise the sender makes its own
    client (no redirects followed) when started and closes it when stopped."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        settings: Settings,
        clock: Clock,
        http: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_id('cb')[-8:]}"
        self.policy = RetryPolicy(
            base=settings.callback_retry_base,
            max_delay=settings.callback_retry_max,
            give_up_after=settings.callback_give_up_after,
        )
        self.lease = timedelta(seconds=settings.callback_timeout + LEASE_MARGIN_SECONDS)
        self._http = http
        self._own_http = http is None
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._results: list[tuple[Attempt, asyncio.Future[None]]] = []
        self._results_ready = asyncio.Event()
        self._stopping = False
        self._depth_counted_at = 0.0

    # ------------------------------------------------------------------ lifecycle

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.settings.callback_timeout),
                follow_redirects=False,
                # Three or four events per message: httpx's own pool would cost ms of CPU each.
                transport=AiohttpTransport(max_connections=self.settings.callback_concurrency),
                headers={"User-Agent": f"wagate/{__version__}"},
            )
        return self._http

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="wagate-callbacks")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # POSTs under way get a moment to finish and be recorded; one cut off is sent again
        # when its lease ends (receivers drop repeats by the event id).
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=STOP_GRACE_SECONDS)
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
            self._committer = None
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                claimed = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("callback cycle failed; retrying shortly")
                await asyncio.sleep(1.0)
                claimed = 0
            if claimed == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=IDLE_POLL_SECONDS)

    async def run_once(self) -> int:
        """Claim one batch of due lane heads and start sending them; returns how many."""
        free = self.settings.callback_concurrency - len(self._inflight)
        if free <= 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.05)
            return 0
        now = self.clock.now()
        # An idle sender only reads; the claim (a write transaction) waits for work.
        async with self.engine.connect() as conn:
            if time.monotonic() - self._depth_counted_at > DEPTH_EVERY_SECONDS:
                self._depth_counted_at = time.monotonic()
                # Counts every pending event (a receiver down for hours leaves many): on
                # SQLite, off the event loop (store/sqlite_inline.py).
                with in_thread():
                    depth = await callback_store.pending_count(conn)
                metrics.set_callback_queue_depth(depth)
            due = await callback_store.has_due(conn, now=now)
        if not due:
            return 0
        # While a receiver is down its due events pile up behind their lanes' heads, and the
        # claim passes over them: off the event loop too.
        with in_thread():
            async with write_tx(self.engine) as conn:
                claims = await callback_store.claim(
                    conn, owner=self.owner, now=now, lease=self.lease, limit=free
                )
        for claim in claims:
            task = asyncio.create_task(self._deliver(claim))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(claims)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("callback task failed", exc_info=task.exception())

    async def drain(self, timeout: float = 30.0) -> None:
        """Run until no lane head is due (for tests and the CLI)."""
        await drain(self.run_once, self._inflight, timeout)

    # ------------------------------------------------------------------ one event

    async def _deliver(self, claim: DueDelivery) -> None:
        attempt = await self.attempt(claim)
        await self._record(attempt)

    async def attempt(self, claim: DueDelivery) -> Attempt:
        """POST one claimed event; what came of it (retry time or give-up included)."""
        if not claim.url or not claim.secret:
            return Attempt(claim.seq, delivered=False, error="The account has no callback URL.")
        body = json.dumps(claim.payload, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = int(self.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(claim.secret, body, timestamp),
            "X-Wagate-Event": claim.type,
            "X-Wagate-Delivery": claim.id,
        }
        status_code: int | None = None
        error: str | None
        try:
            async with self.http.stream("POST", claim.url, content=body, headers=headers) as answer:
                status_code = answer.status_code
                text = await _read_some(answer)
        except httpx.TimeoutException:
            error = f"No answer within {self.settings.callback_timeout:g} s."
        except httpx.HTTPError as exc:
            # What went wrong in words (connection refused, DNS, TLS, ...), never the URL, which
            # may carry credentials.
            error = describe_failure(exc)
        except Exception as exc:  # an unusable URL, say: keep the sender going
            error = f"{type(exc).__name__}: {exc}"
        else:
            if 200 <= status_code < 300:
                return Attempt(claim.seq, delivered=True, status_code=status_code)
            error = f"HTTP {status_code}"
            if 300 <= status_code < 400:
                error += " (redirects are not followed; set the final URL)"
            elif text.strip():
                error += ": " + " ".join(text.split())[:MAX_ERROR_BODY]
        retry_at = next_attempt_at(
            self.policy,
            created_at=claim.created_at,
            now=self.clock.now(),
            attempts=claim.attempts,
            rng=self._rng,
        )
        log.info(
            "callback %s attempt %d failed (%s); %s",
            claim.id,
            claim.attempts,
            status_code or "no answer",
            f"retry at {retry_at:%H:%M:%S}" if retry_at else "given up",
        )
        return Attempt(
            claim.seq,
            delivered=False,
            status_code=status_code,
            error=error[:1000],
            retry_at=retry_at,
        )

    # ------------------------------------------------------------------ group commit

    async def _record(self, attempt: Attempt) -> None:
        """Queue an attempt for the committer and wait until it is durable, so the lane's next
        event is claimed only after this one is settled."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._results.append((attempt, future))
        self._results_ready.set()
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(
                self._commit_loop(), name="wagate-callbacks-committer"
            )
        await future

    async def _commit_loop(self) -> None:
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            while self._results:
                batch = self._results[:500]
                del self._results[:500]
                attempts = [a for a, _ in batch]
                try:
                    async with write_tx(self.engine) as conn:
                        await callback_store.record_attempts(
                            conn, owner=self.owner, attempts=attempts, now=self.clock.now()
                        )
                except Exception as exc:
                    # Nothing recorded: the leases run out and the events are sent again.
                    log.error("could not record %d callback attempts: %s", len(batch), exc)
                else:
                    for a in attempts:
                        metrics.record_callback(
                            "delivered" if a.delivered else "retried" if a.retry_at else "failed"
                        )
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
                self._wake.set()  # the lanes may have a next event


async def _read_some(answer: httpx.Response) -> str:
    """The start of an answer's body (a receiver's error page can be large)."""
    data = b""
    async for chunk in answer.aiter_bytes():
        data += chunk
        if len(data) >= _READ_LIMIT:
            break
    return data[:_READ_LIMIT].decode("utf-8", errors="replace")
