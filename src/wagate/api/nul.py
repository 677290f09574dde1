"""Refuse a NUL character in a request's path or query before it reaches storage.

No id, phone or filter can hold one, and PostgreSQL refuses it in any string it is given, which
would otherwise surface as a storage error (503, "retry") for what is bad input: the API answers
422 `invalid_field`, the dashboard its page for a bad address.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from wagate.domain.errors import FieldError, ValidationFailed


async def reject_nul(request: Request) -> None:
    """An app-wide dependency: every route, the API's and the dashboard's, gets this check."""
    field = _field_with_nul(request.scope["path"], request.scope.get("query_string", b""))
    if field is not None:
        message = f"{field} contains a NUL character; remove it."
        raise ValidationFailed([FieldError(field, "invalid_field", message)])


def _field_with_nul(path: str, query: bytes) -> str | None:
    if "\x00" in path:  # ASGI paths arrive percent-decoded
        return "path"
    if b"%00" not in query.lower() and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "query"
    return None
