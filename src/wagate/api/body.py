"""Reading request bodies: JSON, urlencoded or multipart, always an object (at most 64 KiB:
`BodyLimit` bounds every route's body).

JSON is refused with `invalid_body` (400) when it is nested deeper than `MAX_JSON_DEPTH`
(Python's parser would fail on 30,000 levels, and a few hundred would fail later, wherever the
value is serialised again) or holds a number Python will not read (over 4,300 digits).
"""

from __future__ import annotations

import json
import re
from itertools import accumulate, count
from operator import sub
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request

from wagate.domain.errors import InvalidBody, UnsupportedMediaType

MAX_JSON_DEPTH = 64
"""Arrays and objects nested in one another, at most (Meta's webhooks use about ten)."""

# A JSON string (escapes included), and what is left of a body's structure without strings.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NESTING = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def nesting_problem(raw: bytes, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why a JSON body is nested too deep, or None. Cheap where it matters: a body with
    fewer brackets than `limit` cannot be nested deeper, and most are; only the others are
    scanned (C-speed passes: strings dropped, brackets kept, the running depth's maximum)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return None
    brackets = _STRING.sub(b"", raw).translate(_NESTING, _NOT_BRACKETS)
    # Each opening bracket counts 2, each closing one 0; minus one per bracket: the depth.
    deepest = max(map(sub, accumulate(brackets), count(1)), default=0)
    if deepest <= limit:
        return None
    return f"The JSON is nested {deepest} levels deep; at most {limit} are accepted."


def parse_json(raw: bytes, *, limit: int = MAX_JSON_DEPTH) -> Any:
    """The decoded JSON, or `InvalidBody` saying why not (never another exception)."""
    problem = nesting_problem(raw, limit)
    if problem is not None:
        raise InvalidBody(problem)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidBody(f"The body is not valid JSON: {exc}.") from None
    except ValueError:  # Python's limit on the digits of an integer
        raise InvalidBody("The body holds a number with more than 4,300 digits.") from None
    except RecursionError:  # a backstop: `nesting_problem` refuses such bodies first
        raise InvalidBody("The JSON is nested too deep.") from None


async def read_body(request: Request) -> bytes:
    """The whole body. Its size is bounded by `BodyLimit` (api/body_limit.py), which refuses
    it with `PayloadTooLarge` by its declared length or as it streams, per route."""
    # Straight from the ASGI channel: Starlette's Request.stream() costs more per request
    # than the rest of reading and parsing a send together.
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise InvalidBody("The client went away before sending the whole body.")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_fields(request: Request) -> tuple[dict[str, Any], bool]:
    """The body as a dict of fields, and whether it came from a form (values are strings)."""
    media = _media_type(request)
    if media not in (
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ) and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaType(
            f"Content-Type {media or '(none)'} is not supported; send application/json, "
            "application/x-www-form-urlencoded or multipart/form-data."
        )
    raw = await read_body(request)
    if media == "multipart/form-data":
        return await _multipart(request, raw), True
    if media == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise InvalidBody("The form body is not valid UTF-8.") from None
        return dict(pairs), True
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise InvalidBody('The JSON body must be an object, e.g. {"phone": …, "message": …}.')
    return data, False


async def _multipart(request: Request, raw: bytes) -> dict[str, Any]:
    # The body was already read (to enforce the limit); let Starlette's parser read it again.
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    clone = Request(request.scope, receive)
    try:
        form = await clone.form(max_files=0, max_fields=100)
    except Exception as exc:  # python-multipart raises several unrelated types
        raise InvalidBody(f"The multipart body could not be parsed: {exc}.") from None
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            raise InvalidBody(f"Field {key!r} is a file; send every field as text.")
        fields[key] = value
    return fields
