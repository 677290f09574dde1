"""A Python client for the wagate HTTP API: `from wagate import Client`.

Errors the API answers with are raised as typed exceptions that carry the API's error `code`:

    ApiError                      any error answer (code, message, field, errors, status_code)
    ├── BadRequest                400 invalid_body, 413 payload_too_large, 415 unsupported_…
    ├── AuthenticationError       401 missing_token, invalid_token
    ├── NotFoundError             404 not_found
    ├── ConflictError             409
    │   ├── OutsideServiceWindow  409 outside_service_window
    │   └── IdempotencyConflict   409 idempotency_conflict
    ├── ValidationError           422 field rules (invalid_phone_format, template_not_found, …)
    ├── RateLimitedError          429 rate_limited (retry_after in seconds)
    └── ServiceUnavailable        503 and other 5xx, and a server that cannot be reached

Sends carry an idempotency key (yours, or one made per call), so the client's own retries on
connection errors, 429 and 503 can never send a message twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from wagate.client_kinds import AsyncKindsMixin, KindsMixin
from wagate.server_address import find_server

_RETRIED_STATUSES = (429, 503)
_MAX_BACKOFF = 30.0


class ApiError(Exception):
    """An error answer from the wagate API."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status_code: int,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status_code = status_code
        self.field = field
        self.errors = errors or []


class BadRequest(ApiError):
    """The body could not be read (400), was too large (413) or of another type (415)."""


class AuthenticationError(ApiError):
    """No token, or an unknown or revoked one."""


class NotFoundError(ApiError):
    """Not there, or not this account's."""


class ConflictError(ApiError):
    """The request conflicts with the recipient's window or an earlier request."""


class OutsideServiceWindow(ConflictError):
    """The customer's 24-hour window is closed: send a template instead."""


class IdempotencyConflict(ConflictError):
    """The idempotency key was used with another body."""


class ValidationError(ApiError):
    """A field broke a rule; `errors` lists every problem."""


class RateLimitedError(ApiError):
    """Calls came faster than the account's API rate."""

    retry_after: float = 1.0


class ServiceUnavailable(ApiError):
    """The server could not take the request (nothing was accepted), or could not be reached."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequest,
    415: BadRequest,
    422: ValidationError,
    429: RateLimitedError,
}
_BY_CODE: dict[str, type[ApiError]] = {
    "outside_service_window": OutsideServiceWindow,
    "idempotency_conflict": IdempotencyConflict,
}


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer to a send: the message is stored and queued."""

    id: str
    status: str
    type: str
    phone: str
    window_expires_at: datetime | None
    replayed: bool  # True when this is the first answer to an earlier request with this key

    @classmethod
    def from_response(cls, response: httpx.Response) -> Accepted:
        data = response.json()
        expires = data.get("window_expires_at")
        return cls(
            id=data["id"],
            status=data["status"],
            type=data["type"],
            phone=data["phone"],
            window_expires_at=_parse_time(expires) if expires else None,
            replayed=response.headers.get("idempotent-replayed") == "true",
        )


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One item's result in a batch: `accepted` (an `Accepted`) or `error` (the typed error
    the item would have raised if sent alone); `index` is its place in the request."""

    index: int
    accepted: Accepted | None
    error: ApiError | None

    @property
    def ok(self) -> bool:
        return self.accepted is not None


def batch_results(response: httpx.Response) -> list[BatchItem]:
    """The per-item results of a 207 from `POST /v1/messages/batch`, in order."""
    items = []
    for result in response.json()["results"]:
        if result["success"]:
            expires = result.get("window_expires_at")
            accepted = Accepted(
                id=result["id"],
                status=result["status"],
                type=result["type"],
                phone=result["phone"],
                window_expires_at=_parse_time(expires) if expires else None,
                replayed=bool(result.get("replayed")),
            )
            items.append(BatchItem(result["index"], accepted, None))
        else:
            error = _typed_error(result["status_code"], result["error"], retry_after=None)
            items.append(BatchItem(result["index"], None, error))
    return items


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _typed_error(status: int, error: dict[str, Any], *, retry_after: float | None) -> ApiError:
    code, message = str(error["code"]), str(error["message"])
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if kind is None:
        kind = ServiceUnavailable if status >= 500 else ApiError
    exc = kind(
        code, message, status_code=status, field=error.get("field"), errors=error.get("errors")
    )
    if isinstance(exc, RateLimitedError) and retry_after is not None:
        exc.retry_after = retry_after
    return exc


def error_from(response: httpx.Response) -> ApiError:
    """The typed exception for an error answer."""
    try:
        error = response.json()["error"]
        if not isinstance(error, dict) or not {"code", "message"} <= error.keys():
            raise TypeError("not our error shape")
    except (ValueError, KeyError, TypeError):
        code = "service_unavailable" if response.status_code >= 500 else "http_error"
        message = f"HTTP {response.status_code} from the server: {response.text[:200]}"
        error = {"code": code, "message": message}
    return _typed_error(response.status_code, error, retry_after=_retry_after(response))


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _unreachable(url: str, exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(
        "connection_error",
        f"cannot reach wagate at {url} ({type(exc).__name__}); is the server running?",
        status_code=0,
    )


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _send_body(
    phone: str,
    message: str,
    header: str | None,
    footer: str | None,
    buttons: list[dict[str, str]] | None,
    preview_url: bool | None,
    extras: dict[str, Any],
) -> dict[str, Any]:
    return _clean(
        {
            "phone": phone,
            "message": message,
            "header": header,
            "footer": footer,
            "buttons": buttons,
            "preview_url": preview_url,
        }
        | extras
    )


def _template_body(
    phone: str,
    template: str,
    language: str | None,
    params: dict[str, Any] | None,
    extras: dict[str, Any],
) -> dict[str, Any]:
    return _clean(
        {"phone": phone, "template": template, "language": language, "params": params} | extras
    )


MediaSource = str | os.PathLike[str] | bytes
"""A file to upload: a path, or the bytes themselves."""


def _media_body(
    phone: str,
    media_type: str,
    media_id: str | None,
    media_url: str | None,
    caption: str | None,
    filename: str | None,
    extras: dict[str, Any],
) -> dict[str, Any]:
    return _clean(
        {
            "phone": phone,
            "media_type": media_type,
            "media_id": media_id,
            "media_url": media_url,
            "caption": caption,
            "filename": filename,
            **extras,
        }
    )


@contextlib.contextmanager
def _upload_files(
    source: MediaSource, filename: str | None, media_type: str | None
) -> Iterator[dict[str, Any]]:
    """The multipart fields of an upload; a path is opened here and streamed by httpx."""
    if isinstance(source, bytes):
        yield {"file": (filename or "file", source)}
        return
    path = Path(source)
    with path.open("rb") as handle:
        yield {"file": (filename or path.name, handle)}


class _Base:
    def __init__(
        self, base_url: str | None, token: str | None, timeout: float, max_retries: int
    ) -> None:
        # As the CLI finds its server: WAGATE_URL, else the one running on WAGATE_DATA_DIR (or
        # ./wagate-data), else 127.0.0.1:8000.
        self.base_url = base_url.rstrip("/") if base_url else find_server(None).url
        token = token or os.environ.get("WAGATE_TOKEN")
        if not token:
            raise ValueError("a token is needed: Client(token=...) or WAGATE_TOKEN")
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": "wagate-python"}
        self.timeout = timeout
        self.max_retries = max_retries

    @staticmethod
    def _extras(
        reply_to: str | None,
        metadata: dict[str, Any] | None,
        channel: str | None,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        return {
            "reply_to": reply_to,
            "metadata": metadata,
            "channel": channel,
            # Always a key, so that retrying a send (ours or the caller's) cannot duplicate it.
            "idempotency_key": idempotency_key or f"auto-{uuid.uuid4()}",
        }

    @staticmethod
    def _batch_body(messages: list[dict[str, Any]]) -> dict[str, Any]:
        """Each item as given, with a key of its own when it has none (so that retrying the
        request cannot send an item twice)."""
        items = []
        for item in messages:
            if not isinstance(item, dict):
                raise TypeError("each batch item is a dict (a Send Message or Send Template body)")
            items.append(
                item
                if item.get("idempotency_key")
                else item | {"idempotency_key": f"auto-{uuid.uuid4()}"}
            )
        return {"messages": items}

    def _after_failure(self, attempt: int, exc: httpx.TransportError) -> float:
        """Seconds to wait before trying again after a connection error, or the error."""
        if attempt >= self.max_retries:
            raise _unreachable(self.base_url, exc) from exc
        return float(min(0.25 * 2**attempt, _MAX_BACKOFF))

    def _after_error(self, attempt: int, response: httpx.Response) -> float:
        """Seconds to wait before trying again after an error answer, or the typed error."""
        if response.status_code not in _RETRIED_STATUSES or attempt >= self.max_retries:
            raise error_from(response)
        if response.status_code == 429:
            return min(_retry_after(response), _MAX_BACKOFF)
        return float(min(0.25 * 2**attempt, _MAX_BACKOFF))


class Client(KindsMixin, _Base):
    """Synchronous client. Use as a context manager, or call `close()`.

    >>> with Client("http://127.0.0.1:8000", token="wg_…") as wa:
    ...     sent = wa.send("+14155552671", "Your order *4521* shipped")
    ...     wa.get_message(sent.id)["status"]
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        http: httpx.Client | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout, max_retries)
        self._http = http or httpx.Client(timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(
        self,
        phone: str,
        message: str,
        *,
        header: str | None = None,
        footer: str | None = None,
        buttons: list[dict[str, str]] | None = None,
        preview_url: bool | None = None,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """Send a text message, or an interactive one when a header, footer or buttons are given."""
        extras = self._extras(reply_to, metadata, channel, idempotency_key)
        body = _send_body(phone, message, header, footer, buttons, preview_url, extras)
        return Accepted.from_response(self._request("POST", "/v1/messages", body))

    def send_template(
        self,
        phone: str,
        template: str,
        *,
        language: str | None = None,
        params: dict[str, Any] | None = None,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """Send an approved template; `params` as in the API (`header`, `body`, `buttons`)."""
        extras = self._extras(reply_to, metadata, channel, idempotency_key)
        body = _template_body(phone, template, language, params, extras)
        return Accepted.from_response(self._request("POST", "/v1/messages/template", body))

    def upload_media(
        self, source: MediaSource, *, filename: str | None = None, media_type: str | None = None
    ) -> dict[str, Any]:
        """Store a file to send later (`POST /v1/media`, streamed from disk): `{"id": "med_…",
        "media_type", "mime_type", "size", "sha256"}`. The type is read from the bytes."""
        data = {"media_type": media_type} if media_type else None
        for attempt in range(self.max_retries + 1):
            try:
                with _upload_files(source, filename, media_type) as files:
                    response = self._http.post(
                        self.base_url + "/v1/media", files=files, data=data, headers=self._headers
                    )
            except httpx.TransportError as exc:
                wait = self._after_failure(attempt, exc)
            else:
                if response.status_code < 400:
                    uploaded: dict[str, Any] = response.json()
                    return uploaded
                wait = self._after_error(attempt, response)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def send_media(
        self,
        phone: str,
        media_type: str,
        *,
        media_id: str | None = None,
        media_url: str | None = None,
        caption: str | None = None,
        filename: str | None = None,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """Send an image, video, audio, document or sticker: a file uploaded with
        `upload_media` (`media_id`) or a link wagate fetches (`media_url`)."""
        extras = self._extras(reply_to, metadata, channel, idempotency_key)
        body = _media_body(phone, media_type, media_id, media_url, caption, filename, extras)
        return Accepted.from_response(self._request("POST", "/v1/messages/media", body))

    def send_batch(self, messages: list[dict[str, Any]]) -> list[BatchItem]:
        """Up to 1,000 sends in one request (`POST /v1/messages/batch`): each a Send Message
        body (`{"phone", "message", …}`) or, with `"kind": "template"`, a Send Template body.
        One result per item, in order; a refused item carries its typed error instead of
        raising. Problems with the request as a whole (token, size) raise."""
        response = self._request("POST", "/v1/messages/batch", self._batch_body(messages))
        return batch_results(response)

    def get_message(self, message_id: str) -> dict[str, Any]:
        """The message, its status, Meta's error if it failed, and its status history."""
        return self._json("GET", f"/v1/messages/{quote(message_id, safe='')}")

    def list_messages(
        self,
        *,
        phone: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page, newest first: `{"data": [...], "next_cursor": ...}`."""
        query = _clean({"phone": phone, "status": status, "limit": limit, "cursor": cursor})
        return self._json("GET", "/v1/messages", params=query)

    def conversation(self, phone: str) -> dict[str, Any]:
        """The customer's window (`window_open`, `window_expires_at`) and latest messages."""
        return self._json("GET", f"/v1/conversations/{quote(phone, safe='')}")

    def templates(self) -> list[dict[str, Any]]:
        """The account's templates as last synced from Meta."""
        data = self._json("GET", "/v1/templates")
        templates: list[dict[str, Any]] = data["data"]
        return templates

    def channels(self) -> list[dict[str, Any]]:
        """The account's WhatsApp numbers and their pace."""
        data = self._json("GET", "/v1/channels")
        channels: list[dict[str, Any]] = data["data"]
        return channels

    def sync_templates(self) -> dict[str, Any]:
        """Fetch the account's templates from Meta again: `{"channels": [...], "data": [...]}`."""
        return self._json("POST", "/v1/templates/sync")

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = self._request(method, path, None, **kwargs).json()
        return data

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, **kwargs: Any
    ) -> httpx.Response:
        url = self.base_url + path
        for attempt in range(self.max_retries + 1):
            try:
                response = self._http.request(
                    method, url, json=body, headers=self._headers, **kwargs
                )
            except httpx.TransportError as exc:
                wait = self._after_failure(attempt, exc)
            else:
                if response.status_code < 400:
                    return response
                wait = self._after_error(attempt, response)
            time.sleep(wait)
        raise AssertionError("unreachable")


class AsyncClient(AsyncKindsMixin, _Base):
    """The same API for asyncio code: `async with AsyncClient(...) as wa: await wa.send(...)`."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout, max_retries)
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(
        self,
        phone: str,
        message: str,
        *,
        header: str | None = None,
        footer: str | None = None,
        buttons: list[dict[str, str]] | None = None,
        preview_url: bool | None = None,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        extras = self._extras(reply_to, metadata, channel, idempotency_key)
        body = _send_body(phone, message, header, footer, buttons, preview_url, extras)
        return Accepted.from_response(await self._request("POST", "/v1/messages", body))

    async def send_template(
        self,
        phone: str,
        template: str,
        *,
        language: str | None = None,
        params: dict[str, Any] | None = None,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        extras = self._extras(reply_to, metadata, channel, idempotency_key)
        body = _template_body(phone, template, language, params, extras)
        return Accepted.from_response(await self._request("POST", "/v1/messages/template", body))

    async def upload_media(
        self, source: MediaSource, *, filename: str | None = None, media_type: str | None = None
    ) -> dict[str, Any]:
        data = {"media_type": media_type} if media_type else None
        for attempt in range(self.max_retries + 1):
            try:
                with _upload_files(source, filename, media_type) as files:
                    response = await self._http.post(
                        self.base_url + "/v1/media", files=files, data=data, headers=self._headers
                    )
            except httpx.TransportError as exc:
                wait = self._after_failure(attempt, exc)
            else:
                if response.status_code < 400:
                    uploaded: dict[str, Any] = response.json()
                    return uploaded
                wait = self._after_error(attempt, response)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def send_media(
        self,
        phone: str,
        media_type: str,
        *,
        media_id: str | None = None,
        media_url: str | None = None,
        caption: str | None = None,
        filename: str | None = None,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        extras = self._extras(reply_to, metadata, channel, idempotency_key)
        body = _media_body(phone, media_type, media_id, media_url, caption, filename, extras)
        return Accepted.from_response(await self._request("POST", "/v1/messages/media", body))

    async def send_batch(self, messages: list[dict[str, Any]]) -> list[BatchItem]:
        response = await self._request("POST", "/v1/messages/batch", self._batch_body(messages))
        return batch_results(response)

    async def get_message(self, message_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/v1/messages/{quote(message_id, safe='')}")

    async def conversation(self, phone: str) -> dict[str, Any]:
        return await self._json("GET", f"/v1/conversations/{quote(phone, safe='')}")

    async def templates(self) -> list[dict[str, Any]]:
        templates: list[dict[str, Any]] = (await self._json("GET", "/v1/templates"))["data"]
        return templates

    async def channels(self) -> list[dict[str, Any]]:
        channels: list[dict[str, Any]] = (await self._json("GET", "/v1/channels"))["data"]
        return channels

    async def sync_templates(self) -> dict[str, Any]:
        return await self._json("POST", "/v1/templates/sync")

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = (await self._request(method, path, None, **kwargs)).json()
        return data

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None, **kwargs: Any
    ) -> httpx.Response:
        url = self.base_url + path
        for attempt in range(self.max_retries + 1):
            try:
                response = await self._http.request(
                    method, url, json=body, headers=self._headers, **kwargs
                )
            except httpx.TransportError as exc:
                wait = self._after_failure(attempt, exc)
            else:
                if response.status_code < 400:
                    return response
                wait = self._after_error(attempt, response)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")
