"""The SPEC §8 kinds in the Python client: `send_list`, `send_cta`, `send_location`,
`request_location`, `send_contacts`, `react` and `mark_read`, for `Client` (`KindsMixin`) and
`AsyncClient` (`AsyncKindsMixin`). Each sends one request with an idempotency key (yours, or
one made up), so a retry never sends twice, and returns the same `Accepted` as `send`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx

if TYPE_CHECKING:
    from wagate.client import Accepted


class _Requests(Protocol):
    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, **kwargs: Any
    ) -> httpx.Response: ...

    @staticmethod
    def _extras(
        reply_to: str | None,
        metadata: dict[str, Any] | None,
        channel: str | None,
        idempotency_key: str | None,
    ) -> dict[str, Any]: ...


class _AsyncRequests(Protocol):
    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None, **kwargs: Any
    ) -> httpx.Response: ...

    @staticmethod
    def _extras(
        reply_to: str | None,
        metadata: dict[str, Any] | None,
        channel: str | None,
        idempotency_key: str | None,
    ) -> dict[str, Any]: ...


def _accepted(response: httpx.Response) -> Accepted:
    from wagate.client import Accepted

    return Accepted.from_response(response)


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def list_body(
    phone: str,
    message: str,
    button: str,
    sections: list[dict[str, Any]],
    header: str | None,
    footer: str | None,
) -> tuple[str, dict[str, Any]]:
    fields = {"phone": phone, "message": message, "button": button, "sections": sections}
    return "/v1/messages/list", _clean(fields | {"header": header, "footer": footer})


def cta_body(
    phone: str, message: str, button: str, url: str, header: str | None, footer: str | None
) -> tuple[str, dict[str, Any]]:
    fields = {"phone": phone, "message": message, "button": button, "url": url}
    return "/v1/messages/cta", _clean(fields | {"header": header, "footer": footer})


def location_body(
    phone: str, latitude: float, longitude: float, name: str | None, address: str | None
) -> tuple[str, dict[str, Any]]:
    fields = {"phone": phone, "latitude": latitude, "longitude": longitude}
    return "/v1/messages/location", _clean(fields | {"name": name, "address": address})


def mark_read_path(phone: str) -> str:
    return f"/v1/conversations/{quote(phone, safe='+')}/read"


class KindsMixin:
    """For `Client`."""

    def send_list(
        self: _Requests,
        phone: str,
        message: str,
        *,
        button: str,
        sections: list[dict[str, Any]],
        header: str | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """A list menu: `sections` = [{"title"?, "rows": [{"id", "title", "description"?}]}],
        10 rows at most in all; the customer's pick comes back as a `list_reply`."""
        path, body = list_body(phone, message, button, sections, header, footer)
        body |= self._extras(reply_to, metadata, channel, idempotency_key)
        return _accepted(self._request("POST", path, _clean(body)))

    def send_cta(
        self: _Requests,
        phone: str,
        message: str,
        *,
        button: str,
        url: str,
        header: str | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """A message with one button that opens `url` (https)."""
        path, body = cta_body(phone, message, button, url, header, footer)
        body |= self._extras(reply_to, metadata, channel, idempotency_key)
        return _accepted(self._request("POST", path, _clean(body)))

    def send_location(
        self: _Requests,
        phone: str,
        latitude: float,
        longitude: float,
        *,
        name: str | None = None,
        address: str | None = None,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """A location pin."""
        path, body = location_body(phone, latitude, longitude, name, address)
        body |= self._extras(reply_to, metadata, channel, idempotency_key)
        return _accepted(self._request("POST", path, _clean(body)))

    def request_location(
        self: _Requests,
        phone: str,
        message: str,
        *,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """Ask the customer to share their location (it comes back as a `location`)."""
        body = {"phone": phone, "message": message}
        body |= self._extras(reply_to, metadata, channel, idempotency_key)
        response = self._request("POST", "/v1/messages/location-request", _clean(body))
        return _accepted(response)

    def send_contacts(
        self: _Requests,
        phone: str,
        contacts: list[dict[str, Any]],
        *,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """1 to 5 contact cards in Meta's shape ({"name": {"formatted_name": …}, "phones": …})."""
        body = {"phone": phone, "contacts": contacts}
        body |= self._extras(reply_to, metadata, channel, idempotency_key)
        response = self._request("POST", "/v1/messages/contacts", _clean(body))
        return _accepted(response)

    def react(
        self: _Requests,
        phone: str,
        message_id: str,
        emoji: str,
        *,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """React to one of your messages (msg_…) or a customer's (its wamid); "" removes it."""
        body = {"phone": phone, "message_id": message_id, "emoji": emoji}
        body |= self._extras(None, metadata, None, idempotency_key)
        response = self._request("POST", "/v1/messages/reaction", _clean(body))
        return _accepted(response)

    def mark_read(
        self: _Requests,
        phone: str,
        *,
        typing: bool = False,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """Blue ticks on the customer's latest message; `typing=True` also shows "typing…"."""
        body = {"typing": typing} | self._extras(None, None, channel, idempotency_key)
        response = self._request("POST", mark_read_path(phone), _clean(body))
        return _accepted(response)


class AsyncKindsMixin:
    """For `AsyncClient`: the same methods, awaitable."""

    async def send_list(
        self: _AsyncRequests,
        phone: str,
        message: str,
        *,
        button: str,
        sections: list[dict[str, Any]],
        header: str | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        path, body = list_body(phone, message, button, sections, header, footer)
        body |= self._extras(reply_to, metadata, channel, idempotency_key)
        return _accepted(await self._request("POST", path, _clean(body)))

    async def send_cta(
        self: _AsyncRequests,
        phone: str,
        message: str,
        *,
        button: str,
        url: str,
        header: str | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        path, body = cta_body(phone, message, button, url, header, footer)
        body |= self._extras(reply_to, metadata, channel, idempotency_key)
        return _accepted(await self._request("POST", path, _clean(body)))

    async def send_location(
        self: _AsyncRequests,
        phone: str,
        latitude: float,
        longitude: float,
        *,
        name: str | None = None,
        address: str | None = None,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        path, body = location_body(phone, latitude, longitude, name, address)
        body |= self._extras(reply_to, metadata, channel, idempotency_key)
        return _accepted(await self._request("POST", path, _clean(body)))

    async def request_location(
        self: _AsyncRequests,
        phone: str,
        message: str,
        *,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        body = {"phone": phone, "message": message}
        body |= self._extras(reply_to, metadata, channel, idempotency_key)
        response = await self._request("POST", "/v1/messages/location-request", _clean(body))
        return _accepted(response)

    async def send_contacts(
        self: _AsyncRequests,
        phone: str,
        contacts: list[dict[str, Any]],
        *,
        reply_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        body = {"phone": phone, "contacts": contacts}
        body |= self._extras(reply_to, metadata, channel, idempotency_key)
        response = await self._request("POST", "/v1/messages/contacts", _clean(body))
        return _accepted(response)

    async def react(
        self: _AsyncRequests,
        phone: str,
        message_id: str,
        emoji: str,
        *,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        body = {"phone": phone, "message_id": message_id, "emoji": emoji}
        body |= self._extras(None, metadata, None, idempotency_key)
        response = await self._request("POST", "/v1/messages/reaction", _clean(body))
        return _accepted(response)

    async def mark_read(
        self: _AsyncRequests,
        phone: str,
        *,
        typing: bool = False,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        body = {"typing": typing} | self._extras(None, None, channel, idempotency_key)
        response = await self._request("POST", mark_read_path(phone), _clean(body))
        return _accepted(response)
