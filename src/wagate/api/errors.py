"""Every error leaves the server in the documented shape (SPEC §2); nothing answers 500."""

from __future__ import annotations

import logging

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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(NotFound("No such endpoint. See /docs for the API."))
        if exc.status_code == 405:
            response = error_response(MethodNotAllowed())
            response.headers.update(exc.headers or {})  # Allow: the methods it does take
            return response
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
