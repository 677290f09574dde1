"""Refuse a NUL character in an API request's path or query before it reaches storage.

No id, phone or filter can hold one, and PostgreSQL refuses it in any string it is given, which
would otherwise surface as a storage error (503, "retry") for what is bad input (422).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from wagate.api.errors import error_response
from wagate.domain.errors import FieldError, ValidationFailed


class RejectNul:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            field = _field_with_nul(scope["path"], scope.get("query_string", b""))
            if field is not None:
                problem = FieldError(
                    field, "invalid_field", f"{field} contains a NUL character; remove it."
                )
                await error_response(ValidationFailed([problem]))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _field_with_nul(path: str, query: bytes) -> str | None:
    if "\x00" in path:  # ASGI paths arrive percent-decoded
        return "path"
    if b"%00" not in query.lower() and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "query"
    return None
