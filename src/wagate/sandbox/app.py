"""The sandbox as an ASGI app: Meta's Graph API, the simulated customer, and counters.

Routes (relative to where the app is mounted; `wagate serve` mounts it at `/sandbox`):

    POST /graph/{version}/{phone_number_id}/messages   Meta's send endpoint (and mark-as-read)
    GET  /graph/{version}/{phone_number_id}            the phone number object
    POST /graph/{version}/{phone_number_id}/media      upload a file (see `media`)
    GET  /graph/{version}/{media_id}                   an uploaded file's download URL
    GET  /media-file/{media_id}                        the file (access token, expiring URL)
    POST /customer/media                               the customer sends a file
    GET  /graph/{version}/{waba_id}/phone_numbers      the WABA's numbers
    GET  /graph/{version}/{waba_id}/message_templates  the approved templates
    POST /customer/reply                               the customer sends a message or taps
    GET  /customer/{phone}/messages[?limit=N]          both sides of one customer's chat
    GET  /stats                                        sends, duplicates, webhook counters
    GET|POST|DELETE /faults, DELETE /faults/{id}       injected faults (see `faults`)
    GET  /                                             what the sandbox simulates (no secrets;
                                                       without the token only its name)

Every route but the Graph API's takes the sandbox's access token as `Authorization: Bearer …`
(the token its Graph API takes; the CLI and the dashboard's sandbox phone pass it): whoever
reaches the server could otherwise fail every send, read what the business sent and open
windows. Bodies are bounded (`BodyLimit`: 64 KiB, 1 MiB for the Graph API, 100 MB for files)
and so are numbers (`limit`, fault ids, timestamps): a 4xx, never a 500.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from wagate.api.body import parse_json
from wagate.api.body_limit import SANDBOX_BODY, SANDBOX_LIMITS, BodyLimit
from wagate.domain.errors import InvalidBody, WagateError
from wagate.sandbox import graph
from wagate.sandbox.config import SandboxConfig
from wagate.sandbox.faults import (
    FaultSpecError,
    InjectedDrop,
    InjectedHttpError,
    retry_after_header,
)
from wagate.sandbox.media import customer_sends_media
from wagate.sandbox.service import Sandbox, SandboxRequestError
from wagate.sandbox.templates import template_page

log = logging.getLogger(__name__)


def _route_path(request: Request) -> str:
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "oauth") else None
    return request.query_params.get("access_token")


def _graph_error(error: graph.GraphError) -> JSONResponse:
    headers = {}
    if error.code == 190:
        headers["WWW-Authenticate"] = 'OAuth "Facebook Platform" "invalid_token"'
    if error.retry_after is not None:
        headers["Retry-After"] = retry_after_header(error.retry_after)
    return JSONResponse(error.envelope(), status_code=error.http_status, headers=headers or None)


class DroppedConnection(Response):
    """No complete answer: the status line and headers go out, then the app returns without a
    body. An ASGI server closes the connection then (uvicorn: "ASGI callable returned without
    completing response"), and the client sees it closed mid-response (httpx raises
    `RemoteProtocolError`). Returning before `http.response.start` would not do: uvicorn
    answers a 500 for the app. Over `httpx.ASGITransport` the incomplete response trips an
    assertion in the transport instead; a test transport has to turn that into a network
    error, as `tests/integration/test_delivery_faults.py` does."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})


def _client_gone(request: Request) -> Callable[[], Awaitable[None]]:
    """Returns once the client has hung up (after the body was read, the next ASGI message is
    `http.disconnect`). Over httpx.ASGITransport it never returns; cancel it."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return gone


MAX_LIMIT = 1000
"""The most messages `GET /customer/{phone}/messages?limit=N` returns."""


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def own_route_guard(sandbox: Sandbox) -> Callable[[Request], Awaitable[None]]:
    """The check in front of the sandbox's own routes: its access token, as a Bearer token."""

    async def guard(request: Request) -> None:
        token = _bearer(request)
        if token is None:
            raise SandboxRequestError(
                "missing_token",
                "The sandbox's own routes need its access token: send Authorization: Bearer "
                "<token> (`wagate sandbox info` shows it).",
                status=401,
            )
        if not sandbox.token_matches(token):
            raise SandboxRequestError(
                "invalid_token", "That is not the sandbox's access token.", status=401
            )

    return guard


def _limit(request: Request) -> int | None:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and 1 <= int(raw) <= MAX_LIMIT):
        raise SandboxRequestError(
            "invalid_field", f"limit must be a whole number from 1 to {MAX_LIMIT}.", field="limit"
        )
    return int(raw)


async def _json_body(request: Request) -> object:
    try:
        return parse_json(await request.body())
    except InvalidBody as exc:  # not JSON, nested too deep, a number too long
        raise SandboxRequestError("invalid_body", exc.message, status=400) from None


async def answer_send(
    sandbox: Sandbox,
    version: str,
    phone_number_id: str,
    token: str | None,
    body: bytes,
    *,
    client_gone: Callable[[], Awaitable[None]],
) -> Response:
    """`POST /graph/{version}/{phone_number_id}/messages` (also called by the embedding
    gateway's shortcut, `wagate.sandbox.fastpath`)."""
    if sandbox.closed:
        return _graph_error(graph.service_unavailable())
    sandbox.ensure_started()  # mounted apps get no lifespan events
    sandbox.send_requests += 1
    try:
        sandbox.check_graph(version, f"/{phone_number_id}/messages", token)
        if phone_number_id != sandbox.config.phone_number_id:
            raise graph.unknown_object(phone_number_id)
        answer = await sandbox.send(body, phone_number_id, client_gone=client_gone)
    except graph.GraphError as exc:
        sandbox.state.bump("rejected")
        return _graph_error(exc)
    except InjectedHttpError as exc:
        return Response(exc.body, status_code=exc.status, headers=exc.headers)
    except InjectedDrop:
        return DroppedConnection()
    return JSONResponse(answer)


def create_sandbox_app(
    config: SandboxConfig, *, webhook_client: httpx.AsyncClient | None = None
) -> FastAPI:
    """The sandbox app; its `Sandbox` is at `app.state.sandbox` (call its `aclose()` when the
    app is mounted in another one: mounted apps get no lifespan events)."""
    sandbox = Sandbox(config, webhook_client=webhook_client)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await sandbox.start()
        try:
            yield
        finally:
            await sandbox.aclose()

    async def started() -> None:
        # Mounted apps get no lifespan events: start the webhook pump at the first request.
        if sandbox.closed:
            raise graph.service_unavailable()
        sandbox.ensure_started()

    app = FastAPI(
        title="wagate sandbox",
        description="A simulator of Meta's WhatsApp Cloud API.",
        lifespan=lifespan,
        dependencies=[Depends(started)],
    )
    app.state.sandbox = sandbox
    app.add_middleware(BodyLimit, limits=SANDBOX_LIMITS, default=SANDBOX_BODY)
    own = APIRouter(dependencies=[Depends(own_route_guard(sandbox))])

    @app.exception_handler(SandboxRequestError)
    async def sandbox_error(_: Request, exc: SandboxRequestError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(WagateError)
    async def wagate_error(_: Request, exc: WagateError) -> JSONResponse:
        # A body over its limit (BodyLimit), in SPEC §2's shape.
        return JSONResponse(exc.body(), status_code=exc.http_status, headers=exc.headers)

    @app.exception_handler(graph.GraphError)
    async def graph_error(_: Request, exc: graph.GraphError) -> JSONResponse:
        return _graph_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        path = _route_path(request)
        if path.startswith("/graph/"):
            rest = path[len("/graph") :]
            if exc.status_code == 405:
                return _graph_error(graph.unknown_object(rest, request.method.lower()))
            return _graph_error(graph.unknown_path(rest))
        code = "not_found" if exc.status_code == 404 else "method_not_allowed"
        return JSONResponse(
            {"success": False, "error": {"code": code, "message": str(exc.detail)}},
            status_code=exc.status_code,
        )

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("sandbox error", exc_info=exc)
        return JSONResponse(
            {
                "error": {
                    "message": "An unknown error has occurred.",
                    "type": "OAuthException",
                    "code": 1,
                    "fbtrace_id": graph.fbtrace_id(),
                }
            },
            status_code=500,
        )

    # --- Graph API --------------------------------------------------------------------------

    @app.post("/graph/{version}/{phone_number_id}/messages")
    async def send_message(version: str, phone_number_id: str, request: Request) -> Response:
        return await answer_send(
            sandbox,
            version,
            phone_number_id,
            _token(request),
            await request.body(),
            client_gone=_client_gone(request),
        )

    @app.post("/graph/{version}/{phone_number_id}/media")
    async def upload_media(version: str, phone_number_id: str, request: Request) -> JSONResponse:
        sandbox.check_graph(version, f"/{phone_number_id}/media", _token(request))
        if phone_number_id != config.phone_number_id:
            raise graph.unknown_object(phone_number_id)
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception:  # python-multipart raises several unrelated types
            raise graph.invalid_parameter("The body is not multipart/form-data.") from None
        if form.get("messaging_product") != "whatsapp":
            raise graph.required("messaging_product")
        upload, declared = form.get("file"), form.get("type")
        if not isinstance(upload, UploadFile):
            raise graph.required("file")
        if not isinstance(declared, str) or not declared:
            raise graph.required("type")
        kept = await sandbox.media.keep(upload, phone_number_id, declared)
        sandbox.media.uploads += 1
        return JSONResponse({"id": kept.id})

    @app.get("/media-file/{media_id}")
    async def media_file(media_id: str, request: Request) -> Response:
        token = _token(request)
        if token is None or not hmac.compare_digest(token.encode(), config.access_token.encode()):
            raise graph.invalid_token()
        found = sandbox.media.check_download(
            media_id,
            request.query_params.get("expires", ""),
            request.query_params.get("sig", ""),
        )
        return FileResponse(found.path, media_type=found.mime_type)

    @app.get("/graph/{version}/{object_id}")
    async def graph_object(version: str, object_id: str, request: Request) -> JSONResponse:
        sandbox.check_graph(version, f"/{object_id}", _token(request))
        found = sandbox.media.files.get(object_id)
        if found is not None:
            # Where the sandbox is mounted (/sandbox in `wagate serve`), from the request's URL.
            url = str(request.url.replace(query=""))
            base = url[: len(url) - len(_route_path(request))]
            return JSONResponse(sandbox.media.describe(found, base))
        if object_id == config.phone_number_id:
            return JSONResponse(_fields(sandbox.phone_number(), request))
        if object_id == config.waba_id:
            waba = {
                "id": config.waba_id,
                "name": config.verified_name,
                "currency": "USD",
                "timezone_id": "1",
                "message_template_namespace": "wagate_sandbox",
            }
            return JSONResponse(_fields(waba, request))
        raise graph.unknown_object(object_id, "get")

    @app.get("/graph/{version}/{waba_id}/phone_numbers")
    async def phone_numbers(version: str, waba_id: str, request: Request) -> JSONResponse:
        sandbox.check_graph(version, f"/{waba_id}/phone_numbers", _token(request))
        if waba_id != config.waba_id:
            raise graph.unknown_object(waba_id, "get")
        return JSONResponse({"data": [sandbox.phone_number()]})

    @app.get("/graph/{version}/{waba_id}/message_templates")
    async def message_templates(version: str, waba_id: str, request: Request) -> JSONResponse:
        sandbox.check_graph(version, f"/{waba_id}/message_templates", _token(request))
        if waba_id != config.waba_id:
            raise graph.unknown_object(waba_id, "get")
        limit_arg = request.query_params.get("limit", "25")
        limit = 25
        if limit_arg.isascii() and limit_arg.isdigit():
            # Graph caps a page's size rather than refusing a large one.
            limit = min(int(limit_arg), MAX_LIMIT) if len(limit_arg) <= 6 else MAX_LIMIT
            limit = limit or 25
        base = str(request.url.remove_query_params(["after", "limit", "fields"]))
        after, fields = request.query_params.get("after"), request.query_params.get("fields")
        return JSONResponse(template_page(base, after, limit, fields))

    # --- the simulated customer and the counters ---------------------------------------------

    @own.post("/customer/reply")
    async def customer_reply(request: Request) -> JSONResponse:
        return JSONResponse(await sandbox.reply(await _json_body(request)))

    @own.post("/customer/media")
    async def customer_media(request: Request) -> JSONResponse:
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception:  # python-multipart raises several unrelated types
            raise SandboxRequestError(
                "invalid_body", "Send multipart/form-data: phone, kind, file.", status=400
            ) from None
        return JSONResponse(
            await customer_sends_media(
                sandbox,
                phone=form.get("phone"),
                kind=form.get("kind"),
                upload=form.get("file"),
                caption=form.get("caption") or None,
                name=form.get("name"),
            )
        )

    @own.get("/customer/{phone}/messages")
    async def customer_messages(phone: str, request: Request) -> JSONResponse:
        return JSONResponse(sandbox.messages(phone, _limit(request)))

    @own.get("/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(sandbox.stats())

    @own.get("/faults")
    async def list_faults() -> JSONResponse:
        return JSONResponse([f.as_dict() for f in sandbox.faults.queue])

    @own.post("/faults")
    async def add_fault(request: Request) -> JSONResponse:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise SandboxRequestError("invalid_body", "Send a JSON object.", status=400)
        try:
            fault = sandbox.faults.add(body)
        except FaultSpecError as exc:
            raise SandboxRequestError("invalid_field", exc.message, field=exc.field) from None
        return JSONResponse(fault.as_dict(), status_code=201)

    @own.delete("/faults")
    async def clear_faults() -> JSONResponse:
        sandbox.faults.clear()
        return JSONResponse({"success": True})

    @own.delete("/faults/{fault_id}")
    async def remove_fault(fault_id: str) -> JSONResponse:
        known = fault_id.isascii() and fault_id.isdigit() and len(fault_id) <= 18
        if not (known and sandbox.faults.remove(int(fault_id))):
            return JSONResponse(
                {"success": False, "error": {"code": "not_found", "message": "No such fault."}},
                status_code=404,
            )
        return JSONResponse({"success": True})

    @app.get("/")
    async def info(request: Request) -> JSONResponse:
        if not sandbox.token_matches(_bearer(request)):
            # Without the token, only that it is up (a liveness probe for `sandbox run`).
            return JSONResponse({"name": "wagate sandbox"})
        return JSONResponse(
            {
                "name": "wagate sandbox",
                "phone_number_id": config.phone_number_id,
                "waba_id": config.waba_id,
                "display_phone_number": config.display_phone_number,
                "webhook_url": config.webhook_url,
                "status_delay": config.status_delay,
                "read_receipts": config.read_receipts,
            }
        )

    app.include_router(own)
    return app


def _fields(obj: dict[str, Any], request: Request) -> dict[str, Any]:
    """Graph's `?fields=a,b`: only those (and the id)."""
    wanted = request.query_params.get("fields")
    if not wanted:
        return obj
    names = {name.strip() for name in wanted.split(",")} | {"id"}
    return {k: v for k, v in obj.items() if k in names}
