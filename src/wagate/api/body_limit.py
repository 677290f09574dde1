"""One limit on request bodies for every route, chunked bodies included.

`BodyLimit` is a pure ASGI middleware. It does not read anything itself: it wraps the
request's `receive` channel, so that whoever reads the body (a route, Starlette's form parser,
the sandbox) gets `PayloadTooLarge` as soon as the declared `Content-Length` or the bytes
received so far pass the route's limit. The rest of the body is never read into memory, and
a route that refuses a request before reading it (a webhook without a signature, 401) still
does so. The error is the one every route already answers in SPEC §2's shape (the dashboard:
its error page); should it escape a route anyway, the middleware answers the 413 itself.

The limits are a table, first match wins (`RouteLimit`); a route that needs more (the media
upload route: 100 MB) is one more line in `ROUTE_LIMITS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wagate.domain.errors import PayloadTooLarge, UploadTooLarge
from wagate.domain.media import MAX_UPLOAD

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class RouteLimit:
    """Bodies sent to `path` (or, with `prefix`, to any path starting with it) may hold at
    most `limit` bytes."""

    path: str
    limit: int
    prefix: bool = False
    suffix: str = ""
    """With `prefix`: the path must also end with this (`/media` of a Graph upload)."""
    error: type[PayloadTooLarge] = PayloadTooLarge
    """The refusal's code: `media_too_large` where a file is uploaded."""

    def matches(self, path: str) -> bool:
        if not self.prefix:
            return path.rstrip("/") == self.path
        return path.startswith(self.path) and path.rstrip("/").endswith(self.suffix)


API_BODY = 64 * KiB
"""A send, a template send, callback settings: SPEC §2's 64 KiB."""
BATCH_BODY = 8 * MiB
WEBHOOK_BODY = 8 * MiB
"""Meta sends at most 1,000 updates in one POST; 8 MiB holds them with room to spare."""
DASHBOARD_FORM = 256 * KiB
SIGN_IN_FORM = 16 * KiB
SANDBOX_GRAPH_BODY = 1 * MiB
SANDBOX_BODY = 64 * KiB

MEDIA_BODY = MAX_UPLOAD + 128 * KiB
"""A file of up to 100 MB (SPEC §8, a document) with its multipart framing and fields."""

ROUTE_LIMITS: tuple[RouteLimit, ...] = (
    RouteLimit("/v1/messages/batch", BATCH_BODY),
    RouteLimit("/v1/media", MEDIA_BODY, error=UploadTooLarge),
    RouteLimit(
        "/conversations/", MEDIA_BODY, prefix=True, suffix="/send-media", error=UploadTooLarge
    ),
    RouteLimit("/sandbox/graph/", MEDIA_BODY, prefix=True, suffix="/media", error=UploadTooLarge),
    RouteLimit("/sandbox/customer/media", MEDIA_BODY, error=UploadTooLarge),
    RouteLimit("/webhooks/whatsapp", WEBHOOK_BODY, prefix=True),
    RouteLimit("/v1/", API_BODY, prefix=True),
    RouteLimit("/sandbox/graph/", SANDBOX_GRAPH_BODY, prefix=True),
    RouteLimit("/sandbox/", SANDBOX_BODY, prefix=True),
    RouteLimit("/sign-in", SIGN_IN_FORM),
)
"""The gateway's routes; every other path is the dashboard's (`DASHBOARD_FORM`)."""

SANDBOX_LIMITS: tuple[RouteLimit, ...] = (
    RouteLimit("/graph/", MEDIA_BODY, prefix=True, suffix="/media", error=UploadTooLarge),
    RouteLimit("/customer/media", MEDIA_BODY, error=UploadTooLarge),
    RouteLimit("/graph/", SANDBOX_GRAPH_BODY, prefix=True),
)
"""The sandbox run on its own (`wagate sandbox run`); its other routes take `SANDBOX_BODY`."""


def size(limit: int) -> str:
    if limit >= MiB and limit % MiB == 0:
        return f"{limit // MiB} MiB"
    return f"{limit // KiB} KiB" if limit % KiB == 0 else f"{limit:,} bytes"


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Sequence[RouteLimit] = ROUTE_LIMITS,
        default: int = DASHBOARD_FORM,
        too_large: Callable[[Scope, PayloadTooLarge], ASGIApp] | None = None,
    ) -> None:
        """`too_large` makes the answer when a refusal escaped the app (JSON by default)."""
        self.app = app
        self.limits = tuple(limits)
        self.default = default
        self.too_large = too_large or json_answer

    def limit_for(self, scope: Scope) -> int:
        return self.route_for(scope)[0]

    def route_for(self, scope: Scope) -> tuple[int, type[PayloadTooLarge]]:
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        for route in self.limits:
            if route.matches(path):
                return route.limit, route.error
        return self.default, PayloadTooLarge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, error = self.route_for(scope)
        declared = _content_length(scope)
        received = 0
        refused: PayloadTooLarge | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused is not None:
                raise refused
            if declared is not None and declared > limit:
                refused = error(
                    f"The request body is {declared:,} bytes; the limit here is {size(limit)}."
                )
                raise refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = error(
                        f"The request body is larger than {size(limit)}, the limit here."
                    )
                    raise refused
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if refused is not None:
                    # The rest of the body is not wanted: the server closes the connection
                    # after this answer instead of reading (and dropping) what is still coming.
                    headers = list(message.get("headers", []))
                    headers.append((b"connection", b"close"))
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except PayloadTooLarge as exc:
            if started or exc is not refused:
                raise
            await self.too_large(scope, exc)(scope, receive, watched_send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses such a request before it gets here
    return None


def json_answer(scope: Scope, error: PayloadTooLarge) -> ASGIApp:
    return JSONResponse(error.body(), status_code=error.http_status)


def plain_page(scope: Scope, error: PayloadTooLarge) -> ASGIApp:
    """A dashboard's answer when nothing nicer could be made: a short HTML page."""
    return HTMLResponse(
        f"<!doctype html><title>Too large</title><h1>Too large</h1><p>{error.message}</p>",
        status_code=error.http_status,
    )
