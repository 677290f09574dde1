"""Every error leaves the server in the documented shape (SPEC §2); nothing answers 500."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from wagate.domain.errors import (
    FieldError,
    InvalidBody,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
    WagateError,
)

log = logging.getLogger("wagate.api")


def error_response(error: WagateError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.http_status, headers=error.headers)


def _location(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def allowed_methods(request: Request) -> list[str]:
    """The methods the API describes at this path (Starlette's own 405 names only the first
    route's). A path written out exactly outranks a template that happens to match it
    (`/v1/messages/template` is not a `/v1/messages/{message_id}`)."""
    table = getattr(request.app.state, "allowed_methods", None)
    if table is None:
        table = [
            (template, re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))), methods)
            for template, methods in (
                (path, {m.upper() for m in operations})
                for path, operations in request.app.openapi().get("paths", {}).items()
            )
        ]
        request.app.state.allowed_methods = table
    path = request.url.path
    exact = [methods for template, _, methods in table if template == path]
    matched = exact or [methods for _, pattern, methods in table if pattern.fullmatch(path)]
    return sorted(set().union(*matched)) if matched else []


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WagateError)
    async def _wagate(_: Request, exc: WagateError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            FieldError(_location(tuple(e.get("loc", ()))), "invalid_field", str(e.get("msg")))
            for e in exc.errors()
        ]
        if not errors:
            return error_response(InvalidBody())
        return error_response(ValidationFailed(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(NotFound("No such endpoint. See /docs for the API."))
        if exc.status_code == 405:
            # RFC 9110: a 405 lists the methods the endpoint does take (every route's at this
            # path, from the API's description; else Starlette's, for an undescribed path).
            answer = error_response(MethodNotAllowed())
            allowed = allowed_methods(request)
            if allowed:
                answer.headers["Allow"] = ", ".join(allowed)
            elif exc.headers:
                answer.headers.update(exc.headers)
            return answer
        error = WagateError(str(exc.detail))
        return JSONResponse(error.body(), status_code=exc.status_code)

    @app.exception_handler(DBAPIError)
    async def _db(_: Request, exc: DBAPIError) -> JSONResponse:
        log.error("storage error: %s", type(exc.orig).__name__ if exc.orig else exc)
        return error_response(ServiceUnavailable())

    @app.exception_handler(PoolTimeout)
    async def _pool(_: Request, exc: PoolTimeout) -> JSONResponse:
        log.error("storage pool exhausted")
        return error_response(ServiceUnavailable())

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input; the client learns that nothing was accepted and may retry.
        log.exception("unexpected error")
        return error_response(
            ServiceUnavailable("An internal error occurred; nothing was accepted.")
        )
