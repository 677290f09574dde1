"""A small async client for Meta's WhatsApp Cloud API (Graph API) send endpoint.

`CloudClient.send_message` POSTs a body built by `wagate.cloud.payloads` to
`{graph_url}/{version}/{phone_number_id}/messages` and returns Meta's message id (wamid), or
raises `CloudApiError` carrying what Meta said: its numeric code and subcode, a title, details,
the HTTP status, `Retry-After` and `fbtrace_id`. Network failures raise the same exception with
`meta_code` and `http_status` both None and a title of "timeout", "connection error", "answer
too large" or "url not allowed" (the egress policy refused the Graph URL's address), so the
dispatcher has one type to classify (retry or give up).

An answer that is not Meta's JSON is described (its status, type and size), never quoted: the
Graph URL is configurable, and whatever another server says must not be reflected to callers.

The access token is sent only in the Authorization header: it is never logged, and it is
scrubbed from anything copied from a response or an exception into a `CloudApiError`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from wagate.domain.models import MetaError
from wagate.egress import AnswerTooLarge, EgressRefused
from wagate.egress.transport import EgressTransport

GRAPH_API_VERSION = "v23.0"
MAX_WAMID = 255  # the column that keeps it
DEFAULT_GRAPH_URL = "https://graph.facebook.com"

logger = logging.getLogger(__name__)

_MAX_DETAILS = 500  # characters of Meta's title or details kept
EGRESS_REFUSED = "url not allowed"
_CODE_PREFIX = re.compile(r"^\(#\d+\)\s*")  # Meta's "(#130429) Rate limit hit"


@dataclass(frozen=True, slots=True)
class SendResult:
    """Meta accepted the message: its id, and the recipient's WhatsApp id when Meta gives one.
    A read receipt has no id: Meta answers it with `{"success": true}`."""

    wamid: str | None
    wa_id: str | None = None
    message_status: str | None = None  # e.g. "accepted", "held_for_quality_assessment"


class CloudApiError(Exception):
    """A send that Meta refused, or that never got an answer.

    meta_code     Meta's numeric error code (130429, 131026, ...); None when Meta gave none
                  (a non-JSON answer, a timeout, a connection error).
    title         Meta's message without its "(#code)" prefix, or "timeout" /
                  "connection error" / "HTTP <status>" / "invalid response".
    details       `error_data.details` (or Meta's user message); for a non-JSON answer, the
                  start of the body.
    http_status   the HTTP status, None when there was no answer.
    retry_after   seconds from the `Retry-After` header, when present.
    """

    def __init__(
        self,
        meta_code: int | None,
        title: str,
        details: str = "",
        http_status: int | None = None,
        retry_after: float | None = None,
        error_subcode: int | None = None,
        fbtrace_id: str | None = None,
        error_type: str | None = None,
    ) -> None:
        self.meta_code = meta_code
        self.title = title
        self.details = details
        self.http_status = http_status
        self.retry_after = retry_after
        self.error_subcode = error_subcode
        self.fbtrace_id = fbtrace_id
        self.error_type = error_type
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = []
        if self.meta_code is not None:
            parts.append(f"Meta error {self.meta_code}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        head = " ".join(parts) or "Cloud API"
        text = head if self.title == head else f"{head}: {self.title}"
        if self.details and self.details != self.title:
            text += f" ({self.details})"
        return text

    @property
    def is_network_error(self) -> bool:
        """No answer from Meta at all (timeout or connection error)."""
        return self.http_status is None

    @property
    def refused_by_egress_policy(self) -> bool:
        """The Graph URL's address is one wagate may not connect to: retrying cannot help."""
        return self.title == EGRESS_REFUSED and self.http_status is None

    @property
    def meta_error(self) -> MetaError:
        return MetaError(code=self.meta_code, title=self.title, details=self.details)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (
                self.meta_code,
                self.title,
                self.details,
                self.http_status,
                self.retry_after,
                self.error_subcode,
                self.fbtrace_id,
                self.error_type,
            ),
        )

    def __repr__(self) -> str:
        return (
            f"CloudApiError(meta_code={self.meta_code!r}, title={self.title!r}, "
            f"http_status={self.http_status!r}, error_subcode={self.error_subcode!r}, "
            f"retry_after={self.retry_after!r}, fbtrace_id={self.fbtrace_id!r})"
        )


class CloudClient:
    """Sends messages through the Cloud API with a caller-owned `httpx.AsyncClient`.

    The caller configures timeouts and connection limits on the AsyncClient and closes it.
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        # Over the egress transport a built request goes to it directly (see EgressClient).
        self._egress: EgressTransport | None = getattr(http, "egress", None)
        self._urls: dict[tuple[str, str, str], httpx.URL] = {}
        # The client's own headers (User-Agent, Accept-Encoding, ...) but Accept, merged once:
        # `AsyncClient.post` merges URL, headers and cookies anew for every request, which was
        # a sixth of a send's CPU.
        self._base_headers = [
            (k, v) for k, v in http.headers.raw if k.lower() not in (b"accept", b"content-type")
        ]

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    def _url(self, graph_url: str, version: str, phone_number_id: str) -> httpx.URL:
        key = (graph_url, version, phone_number_id)
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) > 1000:
                self._urls.clear()
            url = self._urls[key] = httpx.URL(messages_url(graph_url, version, phone_number_id))
        return url

    async def send_message(
        self,
        *,
        graph_url: str,
        version: str,
        phone_number_id: str,
        access_token: str,
        payload: dict[str, Any],
    ) -> SendResult:
        request = httpx.Request(
            "POST",
            self._url(graph_url, version, phone_number_id),
            headers=[
                *self._base_headers,
                (b"Accept", b"application/json"),
                (b"Content-Type", b"application/json"),
                (b"Authorization", f"Bearer {access_token}".encode()),
            ],
            content=json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(),
            extensions={"timeout": self._http.timeout.as_dict()},
        )
        try:
            response = await self._send(request)
        except httpx.HTTPError as exc:
            raise network_error(exc, access_token) from None

        logger.debug(
            "cloud send to phone_number_id=%s: HTTP %s", phone_number_id, response.status_code
        )
        if response.is_success:
            if payload.get("status") == "read":
                return _parse_receipt(response, access_token)
            return _parse_success(response, access_token)
        raise _parse_error(response, access_token)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """The answer, read whole (within the transport's size cap and deadline)."""
        if self._egress is None:
            return await self._http.send(request)
        if self._http.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        response = await self._egress.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response


def messages_url(graph_url: str, version: str, phone_number_id: str) -> str:
    """`{graph_url}/{version}/{phone_number_id}/messages`, tolerating a trailing slash."""
    return f"{graph_url.rstrip('/')}/{version.strip('/')}/{phone_number_id}/messages"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


# --------------------------------------------------------------------------- parsing answers


def network_error(exc: httpx.HTTPError, token: str) -> CloudApiError:
    """A request that got no usable answer, as the error the dispatcher classifies."""
    if isinstance(exc, httpx.TimeoutException):
        title = "timeout"
    elif isinstance(exc, EgressRefused):
        title = EGRESS_REFUSED
    elif isinstance(exc, AnswerTooLarge):
        title = "answer too large"
    else:  # connect errors, protocol errors, ...
        title = "connection error"
    return CloudApiError(None, title, _scrub(_exc_text(exc), token))


def _parse_receipt(response: httpx.Response, token: str) -> SendResult:
    """A read receipt's answer: `{"success": true}`."""
    body = _json_or_none(response)
    if not (isinstance(body, dict) and body.get("success") is True):
        raise CloudApiError(
            None,
            "invalid response",
            f"no success: true in {describe_answer(response)}",
            http_status=response.status_code,
        )
    return SendResult(wamid=None)


def _parse_success(response: httpx.Response, token: str) -> SendResult:
    body = _json_or_none(response)
    messages = body.get("messages") if isinstance(body, dict) else None
    first = messages[0] if isinstance(messages, list) and messages else None
    wamid = first.get("id") if isinstance(first, dict) else None
    if not isinstance(wamid, str) or not wamid or len(wamid) > MAX_WAMID:
        raise CloudApiError(
            None,
            "invalid response",
            f"no messages[0].id in {describe_answer(response)}",
            http_status=response.status_code,
        )
    status = first.get("message_status") if isinstance(first, dict) else None
    contacts = body.get("contacts") if isinstance(body, dict) else None
    contact = contacts[0] if isinstance(contacts, list) and contacts else None
    wa_id = contact.get("wa_id") if isinstance(contact, dict) else None
    return SendResult(
        wamid=wamid,
        wa_id=wa_id.strip() if isinstance(wa_id, str) and wa_id.strip() else None,
        message_status=status if isinstance(status, str) else None,
    )


def _parse_error(response: httpx.Response, token: str) -> CloudApiError:
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    body = _json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return CloudApiError(
            None,
            f"HTTP {response.status_code}",
            f"{describe_answer(response)}, not Meta's error object",
            http_status=response.status_code,
            retry_after=retry_after,
        )
    code = _as_int(error.get("code"))
    message = _str(error.get("message"))
    title = _str(error.get("error_user_title")) or _CODE_PREFIX.sub("", message) or message
    error_data = error.get("error_data")
    details = _str(error_data.get("details")) if isinstance(error_data, dict) else ""
    details = details or _str(error.get("error_user_msg"))
    return CloudApiError(
        code,
        _clip(_scrub(title or f"HTTP {response.status_code}", token)),
        _clip(_scrub(details, token)),
        http_status=response.status_code,
        retry_after=retry_after,
        error_subcode=_as_int(error.get("error_subcode")),
        fbtrace_id=_str(error.get("fbtrace_id")) or None,
        error_type=_str(error.get("type")) or None,
    )


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def describe_answer(response: httpx.Response) -> str:
    """What an answer was, without what it said: 'an HTTP 502 answer of 1,234 bytes of
    text/html'."""
    kind = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    of_kind = f" of {kind}" if re.fullmatch(r"[a-z0-9.+-]{1,40}/[a-z0-9.+-]{1,60}", kind) else ""
    return f"an HTTP {response.status_code} answer of {len(response.content):,} bytes{of_kind}"


def _clip(text: str) -> str:
    return text[:_MAX_DETAILS] + ("…" if len(text) > _MAX_DETAILS else "")


def _exc_text(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "[access token]") if token else text


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


# --------------------------------------------------------------------------- media


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """Meta's answer to `GET /{media_id}`: where to download the file (for five minutes)."""

    url: str
    mime_type: str | None
    sha256: str | None
    file_size: int | None


class CloudMedia:
    """Meta's media endpoints: upload a file through a number (`POST /{phone_number_id}/media`),
    look one up (`GET /{media_id}`) and download it (its URL, with the access token).

    `http` is the caller's client for Graph API calls (1 MiB answers); `files` the one for
    file bodies (answers as large as the largest file). Uploads stream: the body is the
    multipart envelope around the caller's chunks, with its length declared up front."""

    def __init__(self, http: httpx.AsyncClient, files: httpx.AsyncClient | None = None) -> None:
        self._http = http
        self._files = files or http

    async def upload(
        self,
        *,
        graph_url: str,
        version: str,
        phone_number_id: str,
        access_token: str,
        chunks: AsyncIterable[bytes],
        size: int,
        mime_type: str,
        filename: str = "file",
    ) -> str:
        """Meta's media id for the uploaded file; `CloudApiError` when Meta refuses it."""
        boundary = f"wagate-{secrets.token_hex(12)}"
        safe_name = re.sub(r'["\\\r\n]', "_", filename) or "file"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="messaging_product"\r\n\r\n'
            f'whatsapp\r\n--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\n'
            f'{mime_type}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{safe_name}"\r\nContent-Type: {mime_type}\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        async def body() -> AsyncIterator[bytes]:
            yield head
            async for chunk in chunks:
                yield chunk
            yield tail

        url = f"{graph_url.rstrip('/')}/{version.strip('/')}/{phone_number_id}/media"
        request = httpx.Request(
            "POST",
            url,
            headers={
                "Authorization": f"Bearer {access_token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(head) + size + len(tail)),
                "Accept": "application/json",
            },
            content=body(),
            extensions={"timeout": self._files.timeout.as_dict()},
        )
        try:
            response = await self._files.send(request)
            await response.aread()
        except httpx.HTTPError as exc:
            raise network_error(exc, access_token) from None
        if not response.is_success:
            raise _parse_error(response, access_token)
        answer = _json_or_none(response)
        media_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(media_id, str) or not media_id or len(media_id) > 128:
            raise CloudApiError(
                None,
                "invalid response",
                f"no media id in {describe_answer(response)}",
                http_status=response.status_code,
            )
        return media_id

    async def info(
        self, *, graph_url: str, version: str, media_id: str, access_token: str
    ) -> MediaInfo:
        url = f"{graph_url.rstrip('/')}/{version.strip('/')}/{media_id}"
        try:
            response = await self._http.get(
                url, headers={"Authorization": f"Bearer {access_token}"}
            )
        except httpx.HTTPError as exc:
            raise network_error(exc, access_token) from None
        if not response.is_success:
            raise _parse_error(response, access_token)
        answer = _json_or_none(response)
        link = answer.get("url") if isinstance(answer, dict) else None
        if not isinstance(link, str) or not link.startswith(("https://", "http://")):
            raise CloudApiError(
                None,
                "invalid response",
                f"no media url in {describe_answer(response)}",
                http_status=response.status_code,
            )
        assert isinstance(answer, dict)
        size = answer.get("file_size")
        return MediaInfo(
            url=link,
            mime_type=_str(answer.get("mime_type")) or None,
            sha256=_str(answer.get("sha256")) or None,
            file_size=_as_int(size),
        )

    def download(self, url: str, access_token: str) -> Any:
        """`async with cloud_media.download(url, token) as response:` the file's answer, its
        body not yet read (`response.aiter_bytes()`), under the files client's caps."""
        return self._files.stream("GET", url, headers={"Authorization": f"Bearer {access_token}"})

    def fetch(self, url: str) -> Any:
        """`async with cloud_media.fetch(url) as response:` a business's `media_url`, its body
        not yet read, under the files client's caps (no credentials sent)."""
        return self._files.stream("GET", url)
