"""The FastAPI application: routers, error handling, and the in-process dispatcher."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from wagate import __version__, secret_box
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
from wagate.api.body_limit import BodyLimit, json_answer, plain_page
from wagate.api.deps import Services
from wagate.api.errors import install_error_handlers
from wagate.api.fastpath import SendFastPath
from wagate.api.kind_schemas import KIND_BODIES
from wagate.api.metrics import ApiRequestMetrics
from wagate.api.nul import reject_nul
from wagate.api.openapi_forms import describe_forms
from wagate.api.request_log import RequestLog
from wagate.api.sandbox_gate import SandboxGate, unreachable_sandbox_channels
from wagate.api.schemas import BatchBody, ErrorResponse, SendMessageBody, SendTemplateBody
from wagate.bootstrap import sandbox_forced
from wagate.clock import Clock, SystemClock
from wagate.cloud.client import CloudClient, CloudMedia
from wagate.config import Settings
from wagate.dashboard import install_dashboard
from wagate.dispatch.worker import Dispatcher
from wagate.domain.errors import PayloadTooLarge
from wagate.egress import graph_client, media_client

_T = TypeVar("_T")


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
    secret_box.configure(settings)  # the key its stored secrets are sealed with
    services = Services(settings=settings, engine=engine, clock=clock)
    gate: SandboxGate | None = None
    if sandbox is not None:

        def refuse(channel_ids: frozenset[str]) -> None:
            services.acceptor.unavailable_channels = channel_ids

        gate = SandboxGate(
            sandbox,
            sandbox.state.sandbox,
            engine=engine,
            local_url=settings.local_url,
            keep=sandbox_forced(settings),
            on_retire=refuse,
        )

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
        if gate is not None:
            await _quietly(gate.check())
            gate.start_watching()
        else:
            # A sandbox channel whose Graph URL is this server's own sandbox, which is not
            # here: its sends are refused at once (channel_unavailable), not failed later.
            found = await _quietly(unreachable_sandbox_channels(engine, settings.local_url))
            services.acceptor.unavailable_channels = found or frozenset()
        if on_startup is not None:
            await on_startup()
        if run_dispatcher:
            services.wake_dispatcher = dispatcher.wake
            dispatcher.start()
        try:
            yield
        finally:
            await services.acceptor.aclose()
            if gate is not None:
                await gate.aclose()
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
    app.add_middleware(BodyLimit, too_large=_too_large)
    app.add_middleware(RequestLog)  # outermost: its duration covers everything below
    install_error_handlers(app)
    # The routers in the order the API's description lists them.
    documented = [
        # Before /v1/messages/{message_id}: a wrong method on /v1/messages/batch is answered
        # with this route's Allow header, not the message route's.
        batch.router,
        media.router,  # before messages: /v1/messages/media is not an id
        kinds.router,  # before messages: /v1/messages/list is not an id
        messages.router,
        conversations.router,
        templates.router,
        callbacks.router,
        channels_api.router,
        webhooks.router,
        health.router,
        docs.router,
        metrics_api.create_router(queue_depth=metrics_api.outbox_depth(engine)),
    ]
    # FastAPI tries the included routers one by one, each costing several route checks (about
    # 100 µs of the ~200 a /healthz took when it was tenth). Meta's webhooks and the health
    # checks share no path with the others, so they are tried first; `POST /v1/messages`
    # never gets here (SendFastPath).
    first = [webhooks.router, health.router]
    for router in first + [r for r in documented if r not in first]:
        app.include_router(router)
    if gate is not None:
        app.mount("/sandbox", gate)
    app.state.sandbox_gate = gate
    install_dashboard(app, services, sandbox=sandbox)
    _document_errors(app, documented)
    return app


async def _quietly(work: Awaitable[_T]) -> _T | None:
    """`work`'s result, or None when storage could not answer (logged; start-up goes on)."""
    try:
        return await work
    except Exception as exc:
        logging.getLogger("wagate.api").warning("could not check the sandbox's channels: %s", exc)
        return None


def _too_large(scope: Any, error: PayloadTooLarge) -> Any:
    """A 413 that escaped the route: the API's JSON, or a plain page on the dashboard's paths."""
    from wagate.dashboard.errors import is_dashboard_path

    page = is_dashboard_path(scope.get("path", ""))
    return plain_page(scope, error) if page else json_answer(scope, error)


def _document_errors(app: FastAPI, documented: list[APIRouter]) -> None:
    """Replace FastAPI's default 422 schema with ours, so clients and fuzzers see the truth;
    the paths in `documented`'s order (not the order they are tried in)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        paths = schema.get("paths", {})
        order = [getattr(route, "path", "") for router in documented for route in router.routes]
        schema["paths"] = {path: paths[path] for path in dict.fromkeys(order) if path in paths}
        schema["paths"].update(paths)
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
