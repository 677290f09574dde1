"""Webhook delivery: batches due statuses into signed POSTs and retries them as Meta does.

One background task (the pump) wakes when a status falls due (plus `webhook_batch_wait`, so
statuses due at about the same moment share one POST, up to `webhook_batch_size`) or when a
webhook's retry is due, and starts deliveries, at most `webhook_concurrency` at a time. A POST
that fails (network error or non-2xx answer) is retried with exponential backoff from
`webhook_retry_initial` up to `webhook_retry_max` seconds between attempts, and dropped once
`webhook_retry_for` seconds have passed since it was first due. Webhooks are kept in the state
store, so a restarted sandbox delivers what was pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

import httpx

from wagate.sandbox import events
from wagate.sandbox.config import SandboxConfig
from wagate.sandbox.state import PendingWebhook, SandboxState

log = logging.getLogger(__name__)


class WebhookDispatcher:
    def __init__(
        self,
        config: SandboxConfig,
        state: SandboxState,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self._client = client
        self._owns_client = client is None
        self._pump: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._inflight: set[int] = set()
        self._wake = asyncio.Event()
        self._wake_at = math.inf
        self._closed = False

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._pump is not None and not self._pump.done()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def start(self) -> None:
        """Start the pump in the running event loop (idempotent)."""
        if self._closed or self.running:
            return
        if self._client is None:
            self._client = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=self.config.webhook_concurrency + 8)
            )
        self._wake = asyncio.Event()
        self._wake_at = math.inf
        self._pump = asyncio.get_running_loop().create_task(self._run(), name="sandbox-webhooks")

    async def aclose(self) -> None:
        """Stop delivering; what is still pending stays in the state store."""
        self._closed = True
        tasks = [t for t in (self._pump, *self._deliveries) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5.0)
            for task in stuck:
                log.warning("sandbox webhook task %s did not stop", task.get_name())
        self._pump = None
        self._inflight.clear()
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def notify(self, due: float) -> None:
        """Something becomes due at `due` (epoch seconds): make sure the pump wakes for it."""
        if due + self.config.webhook_batch_wait < self._wake_at:
            self._wake.set()

    # --- posting ----------------------------------------------------------------------------

    async def post(self, body: str, wait: float) -> int | None:
        """POST one signed webhook; the receiver's HTTP status, or None if it could not answer."""
        if self._client is None:
            self._client = httpx.AsyncClient()
        raw = body.encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": events.sign(self.config.app_secret, raw),
            "User-Agent": "facebookexternalua",
        }
        try:
            response = await self._client.post(
                self.config.webhook_url, content=raw, headers=headers, timeout=wait
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # network error, timeout, or an in-process receiver's crash
            log.info("sandbox webhook to %s failed: %r", self.config.webhook_url, exc)
            return None
        return response.status_code

    async def deliver_now(self, body: str) -> tuple[bool, int | None]:
        """POST at once (a customer's message); if the receiver does not take it, queue it."""
        code = await self.post(body, self.config.reply_timeout)
        ok = code is not None and 200 <= code < 300
        if ok:
            self.state.bump("webhooks_delivered")
        else:
            now = time.time()
            due = now + self.config.webhook_retry_initial
            self.state.add_webhook("inbound", body, now, attempts=1, next_attempt=due)
            self.state.bump("webhook_failed_attempts")
            self.start()
            self.notify(due)
        return ok, code

    # --- the pump ---------------------------------------------------------------------------

    def _successor(self, status: str) -> str | None:
        if status == "sent":
            return "delivered"
        if status == "delivered" and self.config.read_receipts:
            return "read"
        return None

    def _claim_statuses(self, now: float) -> None:
        """Once the oldest due status has waited `webhook_batch_wait`, turn every status due by
        `now` into webhooks of up to `webhook_batch_size` each."""
        first = self.state.next_status_due()
        if first is None or first + self.config.webhook_batch_wait > now:
            return
        size = max(1, self.config.webhook_batch_size)
        while True:
            due = self.state.due_statuses(now, size)
            if not due:
                return
            objects = [events.status_object(d, int(now)) for d in due]
            body = events.dumps(
                events.envelope(self.config, events.status_value(self.config, objects))
            )
            self.state.add_status_webhook(body, [(d.wamid, d.status) for d in due], now)
            if len(due) < size:
                return

    async def _run(self) -> None:
        cfg = self.config
        while not self._closed:
            self._wake.clear()
            now = time.time()
            try:
                self._claim_statuses(now)
                free = max(1, cfg.webhook_concurrency) - len(self._inflight)
                if free > 0:
                    for hook in self.state.due_webhooks(now, sorted(self._inflight), free):
                        self._inflight.add(hook.id)
                        task = asyncio.create_task(self._deliver(hook))
                        self._deliveries.add(task)
                        task.add_done_callback(self._deliveries.discard)
                wake_at = math.inf
                status_due = self.state.next_status_due()
                if status_due is not None:
                    wake_at = status_due + cfg.webhook_batch_wait
                if len(self._inflight) < max(1, cfg.webhook_concurrency):
                    retry_due = self.state.next_webhook_attempt(sorted(self._inflight))
                    if retry_due is not None:
                        wake_at = min(wake_at, retry_due)
            except Exception:  # a broken store must not kill the pump silently forever
                log.exception("sandbox webhook pump failed; retrying in 1 s")
                wake_at = time.time() + 1.0
            self._wake_at = wake_at
            delay = None if wake_at == math.inf else max(0.0, wake_at - time.time())
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # arrives as the event is set (a delivery finishing during aclose), and the pump
            # would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _deliver(self, hook: PendingWebhook) -> None:
        cfg = self.config
        try:
            code = await self.post(hook.body, cfg.webhook_timeout)
            now = time.time()
            if code is not None and 200 <= code < 300:
                self.state.webhook_delivered(hook, now, self._successor, cfg.status_delay)
                if any(self._successor(status) for _, status in hook.statuses):
                    self.notify(now + cfg.status_delay)
                return
            attempts = hook.attempts + 1
            if now - hook.created_at >= cfg.webhook_retry_for:
                log.warning("sandbox webhook %s dropped after %s attempts", hook.id, attempts)
                self.state.webhook_dropped(hook)
                return
            backoff = min(cfg.webhook_retry_initial * 2 ** (attempts - 1), cfg.webhook_retry_max)
            result = "no answer" if code is None else f"HTTP {code}"
            self.state.webhook_retry(hook.id, attempts, now + backoff, result)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sandbox webhook %s delivery failed", hook.id)
        finally:
            self._inflight.discard(hook.id)
            self._wake.set()
