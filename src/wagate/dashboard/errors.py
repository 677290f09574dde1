"""Error pages: the dashboard answers in HTML, while the API keeps its JSON error shape."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from wagate.dashboard.web import (
    DashboardError,
    SignInRequired,
    render,
    sign_in_redirect,
    signed_in,
)

# Everything else on the server is the dashboard's.
API_PREFIXES = (
    "/v1",
    "/webhooks/",
    "/sandbox/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs",
    "/redoc",
    "/openapi.json",
)

_BY_STATUS = {
    400: ("Something is wrong with this request", "Go back and check what you entered."),
    404: ("Page not found", "There is nothing at this address. Use the menu to find your way."),
    405: ("Not here", "This address does not take that kind of request."),
    413: ("Too large", "That form is too large to send."),
    422: ("Something is wrong with this address", "Some values in the address are not valid."),
    429: ("Too many requests", "Wait a moment and try again."),
}
_SERVER_TROUBLE = (
    "The server is having trouble",
    "It could not finish this request (storage may be unavailable). Try again in a moment.",
)

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def is_dashboard_path(path: str) -> bool:
    return not (path == "/v1" or path.startswith(API_PREFIXES))


async def error_page(request: Request, status: int, title: str, message: str) -> Response:
    if getattr(request.state, "user", None) is None:
        # A page the router never reached: still show a signed-in user their menu.
        with contextlib.suppress(SignInRequired, SQLAlchemyError):
            await signed_in(request)
    return render(request, "error.html", status=status, title=title, message=message)


def install_error_pages(app: FastAPI) -> None:
    """Dashboard errors as pages; the API's handlers (installed before) wrapped so that they
    answer pages for dashboard paths and stay as they are for the API's."""

    def wrap(original: Handler) -> Callable[[Request, Any], Awaitable[Response]]:
        async def handle(request: Request, exc: Any) -> Response:
            answer = original(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
            if not is_dashboard_path(request.url.path):
                return response
            status = response.status_code
            title, message = _BY_STATUS.get(status, _SERVER_TROUBLE)
            if status >= 500:
                # Never a 500 page: the request failed for want of a resource, say so.
                status = 503
            return await error_page(request, status, title, message)

        return handle

    for exc_class, handler in list(app.exception_handlers.items()):
        app.add_exception_handler(exc_class, wrap(handler))

    async def dashboard_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DashboardError)
        return await error_page(request, exc.status, exc.title, exc.message)

    async def sign_in_required(request: Request, exc: Exception) -> Response:
        return sign_in_redirect(request)

    app.add_exception_handler(DashboardError, dashboard_error)
    app.add_exception_handler(SignInRequired, sign_in_required)
