"""A shortcut for `POST /v1/messages`, the one endpoint whose speed matters.

FastAPI's per-request routing and dependency solving cost more CPU than the whole send (parse,
validate, group commit). This ASGI middleware hands that one route straight to its handler with
the same error handling; every other request, and the OpenAPI description of this one, stays
with FastAPI.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from wagate.api.deps import Services
from wagate.api.errors import error_response
from wagate.api.messages import accept_send
from wagate.domain.errors import ServiceUnavailable, WagateError

log = logging.getLogger("wagate.api")


class SendFastPath:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"].rstrip("/") != "/v1/messages"
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await accept_send(request, self.services)
        except WagateError as error:
            response = error_response(error)
        except Exception:
            log.exception("unexpected error")
            response = error_response(
                ServiceUnavailable("An internal error occurred; nothing was accepted.")
            )
        await response(scope, receive, send)
