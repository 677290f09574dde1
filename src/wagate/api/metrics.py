"""`GET /metrics` in Prometheus's text format, and a middleware counting API answers.

Wiring (in `create_app`):

    app.add_middleware(ApiRequestMetrics)   # after SendFastPath, so that it wraps it too
    app.include_router(create_router(queue_depth=outbox_depth(engine)))

`queue_depth`, when given, is awaited at each scrape (a `COUNT(*)` of the outbox) so that
`wagate_queue_depth` is right in an `api`-only process too; without it the gauge shows what the
dispatcher last set with `wagate.metrics.set_queue_depth`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client.exposition import choose_encoder
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate.metrics import METRICS, Metrics, QueueDepthProbe

log = logging.getLogger("wagate.metrics")

PROBE_TIMEOUT = 2.0
"""Seconds a scrape waits for the queue depth count before serving the last value."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def outbox_depth(engine: AsyncEngine) -> QueueDepthProbe:
    """A probe that counts the outbox's rows."""
    from wagate.store.sqlite_inline import in_thread
    from wagate.store.tables import outbox

    async def count() -> int:
        # A count reads every queued row: on SQLite, off the event loop (store/sqlite_inline.py).
        with in_thread():
            async with engine.connect() as conn:
                result = await conn.execute(select(func.count()).select_from(outbox))
                return int(result.scalar_one())

    return count


def create_router(
    metrics: Metrics = METRICS, *, queue_depth: QueueDepthProbe | None = None
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {
                "description": "The metrics in Prometheus's text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics_endpoint(request: Request) -> Response:
        if queue_depth is not None:
            try:
                metrics.set_queue_depth(await asyncio.wait_for(queue_depth(), PROBE_TIMEOUT))
            except Exception as exc:  # a scrape never fails because storage is slow
                log.warning("queue depth not counted: %s", type(exc).__name__)
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(content=encoder(metrics.registry), media_type=content_type)

    return router


router = create_router()
"""`GET /metrics` of the process's `METRICS`, without a queue depth probe."""


class ApiRequestMetrics:
    """Pure ASGI middleware: counts each answer to a path under `prefixes` by its status."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics = METRICS,
        prefixes: tuple[str, ...] = ("/v1/", "/webhooks/"),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        status: int | None = None

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        except Exception:
            self.metrics.record_api_request(status or 500)
            raise
        if status is not None:
            self.metrics.record_api_request(status)
