"""A shortcut to the sandbox's send endpoint for the gateway that embeds it.

`wagate serve` hands every outgoing message to its embedded sandbox in-process. Through the
gateway's and then the sandbox's FastAPI stacks (middleware, routing, dependency solving) that
cost more CPU than the simulated send itself. `GraphSendFastPath` answers `POST
{prefix}/graph/{version}/{phone_number_id}/messages` with the same handler as the sandbox's
route (`answer_send`); every other request goes on to the wrapped app unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wagate.sandbox.app import answer_send
from wagate.sandbox.service import Sandbox


class GraphSendFastPath:
    def __init__(self, app: ASGIApp, sandbox: Sandbox, *, prefix: str = "/sandbox") -> None:
        self.app = app
        self.sandbox = sandbox
        self.prefix = prefix.rstrip("/") + "/graph/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        parts = path[len(self.prefix) :].split("/") if path.startswith(self.prefix) else []
        if (
            scope.get("method") != "POST"
            or len(parts) != 3
            or parts[2] != "messages"
            # Turned off (a real channel was added): the mounted sandbox answers 404, which
            # fails the message at once instead of a 503 retried for hours.
            or self.sandbox.closed
        ):
            await self.app(scope, receive, send)
            return
        version, phone_number_id = parts[0], parts[1]
        body = await _read_body(receive)
        response = await answer_send(
            self.sandbox,
            version,
            phone_number_id,
            _token(scope),
            body,
            client_gone=_disconnected(receive),
        )
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() in ("bearer", "oauth") else None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("access_token")
    return query[0] if query else None


def _disconnected(receive: Receive) -> Callable[[], Awaitable[None]]:
    """Returns once the client has hung up (as the sandbox app's route does)."""

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    return gone


class InProcessClient(httpx.AsyncClient):
    """The Cloud API client of a gateway that embeds its sandbox: requests to `local_url` go
    straight to `transport` (the gateway's app, in-process), without the client's cookie,
    auth and redirect handling (which cost a fifth of a send's CPU and do nothing here: Meta
    sets no cookies and never redirects a send); any other URL goes out through `network`."""

    def __init__(
        self,
        local_url: str,
        transport: httpx.AsyncBaseTransport,
        network: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ):
        super().__init__(mounts={local_url: transport}, transport=network, **kwargs)
        local = httpx.URL(local_url)
        self._local = (local.scheme, local.host, local.port)
        self._in_process = transport

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        url = request.url
        if (url.scheme, url.host, url.port) != self._local:
            return await super().send(request, **kwargs)
        response = await self._in_process.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response
