"""The FastAPI application: routers, error handling, and the in-process dispatcher."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate import __version__
from wagate.api import (
    batch,
    callbacks,
    conversations,
    docs,
    health,
    kinds,
    media,
    messages,
    templates,
    webhooks,
)
from wagate.api import channels as channels_api
from wagate.api import metrics as metrics_api
from wagate.api.deps import Services
from wagate.api.errors import install_error_handlers
from wagate.api.fastpath import SendFastPath
from wagate.api.kind_schemas import KIND_BODIES
from wagate.api.metrics import ApiRequestMetrics
from wagate.api.nul import reject_nul
from wagate.api.openapi_forms import describe_forms
from wagate.api.request_log import RequestLog
from wagate.api.schemas import BatchBody, ErrorResponse, SendMessageBody, SendTemplateBody
from wagate.clock import Clock, SystemClock
from wagate.cloud.client import CloudClient, CloudMedia
from wagate.config import Settings
from wagate.dashboard import install_dashboard
from wagate.dispatch.worker import Dispatcher
from wagate.egress import graph_client, media_client


def create_app(
    settings: Settings,
    *,
    engine: AsyncEngine,
    clock: Clock | None = None,
    cloud_http: httpx.AsyncClient | None = None,
    media_http: httpx.AsyncClient | None = None,
    run_dispatcher: bool = True,
    sandbox: Any = None,
    on_startup: Callable[[], Awaitable[None]] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """`sandbox`, when given, is the simulator's ASGI app, mounted at /sandbox. `cloud_http`
    reaches Meta's Graph API; `media_http` its files (default: `cloud_http` when given, else
    a client under the egress policy with answers up to 100 MB)."""
    clock = clock or SystemClock()
    services = Services(settings=settings, engine=engine, clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        http = cloud_http or graph_client(settings)
        files_http = media_http or cloud_http or media_client(settings)
        dispatcher = Dispatcher(
            engine=engine,
            settings=settings,
            clock=clock,
            cloud=CloudClient(http),
            media=CloudMedia(http, files_http),
            media_files=services.media_files,
        )
        app.state.dispatcher = dispatcher
        app.state.cloud_http = http  # template syncs reach Meta (or the sandbox) through it
        if on_startup is not None:
            await on_startup()
        if run_dispatcher:
            services.wake_dispatcher = dispatcher.wake
            dispatcher.start()
        try:
            yield
        finally:
            await services.acceptor.aclose()
            await dispatcher.stop()
            if sandbox is not None and hasattr(sandbox.state, "sandbox"):
                await sandbox.state.sandbox.aclose()
            if cloud_http is None:
                await http.aclose()
            if files_http is not http and files_http is not media_http:
                await files_http.aclose()
            if on_shutdown is not None:
                await on_shutdown()

    app = FastAPI(
        title="wagate",
        version=__version__,
        description="A self-hosted WhatsApp Business messaging gateway.",
        lifespan=lifespan,
        # Served from the package by api/docs.py: FastAPI's own pages load Swagger UI and
        # ReDoc from a CDN, blank without internet.
        docs_url=None,
        redoc_url=None,
        # We export our own Prometheus metrics; FastAPI's OpenTelemetry hooks would cost a
        # fifth of a send's CPU checking whether a tracer is configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        dependencies=[Depends(reject_nul)],
    )
    app.state.services = services
    app.add_middleware(SendFastPath, services=services)
    app.add_middleware(ApiRequestMetrics)
    app.add_middleware(RequestLog)  # outermost: its duration covers everything below
    install_error_handlers(app)
    # Before /v1/messages/{message_id}: a wrong method on /v1/messages/batch is answered with
    # this route's Allow header, not the message route's.
    app.include_router(batch.router)
    app.include_router(media.router)  # before messages: /v1/messages/media is not an id
    app.include_router(kinds.router)  # before messages: /v1/messages/list is not an id
    app.include_router(messages.router)
    app.include_router(conversations.router)
    app.include_router(templates.router)
    app.include_router(callbacks.router)
    app.include_router(channels_api.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(metrics_api.create_router(queue_depth=metrics_api.outbox_depth(engine)))
    if sandbox is not None:
        app.mount("/sandbox", sandbox)
    install_dashboard(app, services, sandbox=sandbox)
    _document_errors(app)
    return app


def _document_errors(app: FastAPI) -> None:
    """Replace FastAPI's default 422 schema with ours, so clients and fuzzers see the truth."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"] = {
                        "description": "A field breaks a rule; every problem is listed",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                            }
                        },
                    }
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        # The send endpoint reads its body itself (JSON or form); its schema is added by hand.
        models: list[type[BaseModel]] = [ErrorResponse, SendMessageBody, SendTemplateBody]
        models += [BatchBody, *KIND_BODIES]
        for model in models:
            definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, nested in definition.pop("$defs", {}).items():
                components.setdefault(name, nested)
            components.setdefault(model.__name__, definition)
        describe_forms(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
