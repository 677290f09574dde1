"""The public error tree: every error a client can see is a class here.

    WagateError                     (code, http_status, message, field)
    ├── InvalidBody                 400 invalid_body
    ├── MissingToken                401 missing_token
    ├── InvalidToken                401 invalid_token
    ├── NotFound                    404 not_found
    │   └── MediaNotFound           404 media_not_found
    ├── MethodNotAllowed            405 method_not_allowed
    ├── OutsideServiceWindow        409 outside_service_window
    ├── PayloadTooLarge             413 payload_too_large
    │   └── UploadTooLarge          413 media_too_large (an upload over 100 MB)
    ├── UnsupportedMediaType        415 unsupported_media_type
    ├── ValidationFailed            422 (code of the first FieldError; all listed)
    ├── UrlNotAllowed               422 url_not_allowed (the egress policy refuses a URL)
    ├── RateLimited                 429 rate_limited
    ├── UpstreamError               502 upstream_error
    └── ServiceUnavailable          503 service_unavailable

A class's docstring is its default message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken field rule: where, which rule (a stable code), and how to fix it."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class WagateError(Exception):
    """Something went wrong."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 400

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.field = field
        super().__init__(self.message)

    @property
    def errors(self) -> list[FieldError]:
        if self.field is None:
            return []
        return [FieldError(self.field, self.code, self.message)]

    @property
    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> dict[str, Any]:
        """The documented error shape (SPEC §2)."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        error["errors"] = [e.as_dict() for e in self.errors]
        return {"success": False, "error": error}


class InvalidBody(WagateError):
    """The request body is not a JSON object or a form."""

    code = "invalid_body"
    http_status = 400


class MissingToken(WagateError):
    """No API token: send it as `Authorization: Bearer <token>` or in the `token` field."""

    code = "missing_token"
    http_status = 401

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class InvalidToken(WagateError):
    """The API token is unknown or revoked. Create one with `wagate tokens create`."""

    code = "invalid_token"
    http_status = 401

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class NotFound(WagateError):
    """Nothing with that id exists for this account."""

    code = "not_found"
    http_status = 404


class MediaNotFound(NotFound):
    """No such media file for this account: upload it with POST /v1/media."""

    code = "media_not_found"


class MethodNotAllowed(WagateError):
    """This endpoint does not accept that HTTP method."""

    code = "method_not_allowed"
    http_status = 405


class OutsideServiceWindow(WagateError):
    """The recipient's 24-hour customer service window is closed. Free-form messages can only be
    sent within 24 hours of the customer's last message; send an approved template with
    POST /v1/messages/template instead."""

    code = "outside_service_window"
    http_status = 409


class IdempotencyConflict(WagateError):
    """This Idempotency-Key was already used with a different request body."""

    code = "idempotency_conflict"
    http_status = 409


class PayloadTooLarge(WagateError):
    """The request body is larger than 64 KiB."""

    code = "payload_too_large"
    http_status = 413


class UploadTooLarge(PayloadTooLarge):
    """The file is larger than 100 MB, the most WhatsApp takes of any kind (a document)."""

    code = "media_too_large"


class UnsupportedMediaType(WagateError):
    """Send application/json, application/x-www-form-urlencoded or multipart/form-data."""

    code = "unsupported_media_type"
    http_status = 415


class ValidationFailed(WagateError):
    """One or more fields break a rule."""

    http_status = 422

    def __init__(self, errors: list[FieldError]) -> None:
        if not errors:
            raise ValueError("ValidationFailed needs at least one FieldError")
        self._field_errors = list(errors)
        first = errors[0]
        super().__init__(first.message, field=first.field)

    @property
    def code(self) -> str:  # type: ignore[override]
        return self._field_errors[0].code

    @property
    def errors(self) -> list[FieldError]:
        return list(self._field_errors)


class UrlNotAllowed(WagateError):
    """wagate may not send requests to this URL (see WAGATE_EGRESS_ALLOW)."""

    code = "url_not_allowed"
    http_status = 422


class RateLimited(WagateError):
    """Too many requests for this account; retry after the time in Retry-After."""

    code = "rate_limited"
    http_status = 429

    def __init__(
        self, retry_after: float, message: str | None = None, *, api_rate: int | None = None
    ) -> None:
        self.retry_after = retry_after
        if message is None and api_rate is not None:
            message = (
                f"This account may make {api_rate} requests a second (bursts to "
                f"{2 * api_rate}); retry after {retry_after:.2f} s."
            )
        super().__init__(message)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after)))}


class UpstreamError(WagateError):
    """Meta's Graph API failed or could not be reached; nothing was changed. Retry later."""

    code = "upstream_error"
    http_status = 502


class ServiceUnavailable(WagateError):
    """Storage cannot take the request right now; nothing was accepted. Retry shortly."""

    code = "service_unavailable"
    http_status = 503

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}
