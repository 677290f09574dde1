"""The Python client (`from wagate import Client`) against the real API and sandbox."""

from __future__ import annotations

import httpx
import pytest

import wagate
from tests.support.harness import BASE, Harness
from wagate.client import (
    AsyncClient,
    AuthenticationError,
    IdempotencyConflict,
    NotFoundError,
    OutsideServiceWindow,
    ValidationError,
)

CUSTOMER = "+14155552671"


class LosesFirstAnswer(httpx.AsyncBaseTransport):
    """The network drops the answer to the first request after the server has handled it:
    the case where a client cannot know whether its send went through."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        response = await self.inner.handle_async_request(request)
        if self.requests == 1:
            await response.aclose()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


def _client(gateway: Harness, transport: httpx.AsyncBaseTransport | None = None) -> AsyncClient:
    http = httpx.AsyncClient(
        transport=transport or httpx.ASGITransport(app=gateway.app), base_url=BASE
    )
    return AsyncClient(BASE, gateway.token, http=http)


def test_the_package_exports_the_client() -> None:
    assert wagate.Client is wagate.client.Client
    assert issubclass(wagate.ApiError, Exception)
    with pytest.raises(AttributeError):
        _ = wagate.NoSuchThing  # type: ignore[attr-defined]


async def test_send_read_and_conversation(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    async with _client(gateway) as wa:
        sent = await wa.send(
            CUSTOMER,
            "Pick a slot",
            header="Delivery",
            buttons=[{"id": "am", "title": "Morning"}, {"id": "pm", "title": "Afternoon"}],
            metadata={"order": 4521},
        )
        assert sent.id.startswith("msg_")
        assert (sent.status, sent.type, sent.phone) == ("queued", "interactive", CUSTOMER)
        assert sent.window_expires_at is not None
        assert sent.replayed is False
        await gateway.wait_status(sent.id, "read")
        message = await wa.get_message(sent.id)
        assert message["status"] == "read"
        conversation = await wa.conversation(CUSTOMER)
        assert conversation["window_open"] is True
        channels = await wa.channels()
        assert channels[0]["is_sandbox"] is True
        assert "access_token" not in channels[0]
        assert channels[0]["pair_rate"]["interval_seconds"] > 0


async def test_api_errors_are_typed_and_carry_the_code(gateway: Harness) -> None:
    async with _client(gateway) as wa:
        with pytest.raises(OutsideServiceWindow) as closed:
            await wa.send(CUSTOMER, "hello")
        assert closed.value.code == "outside_service_window"
        assert closed.value.status_code == 409
        assert "/v1/messages/template" in closed.value.message

        with pytest.raises(ValidationError) as invalid:
            await wa.send("+1 415 555 2671", "hello", buttons=[{"id": "x", "title": "y" * 21}])
        assert invalid.value.code == "invalid_phone_format"
        assert {e["code"] for e in invalid.value.errors} >= {
            "invalid_phone_format",
            "button_title_too_long",
        }
        assert invalid.value.field == "phone"

        with pytest.raises(NotFoundError):
            await wa.get_message("msg_nope")

        await gateway.reply(CUSTOMER, text="hi")
        await wa.send(CUSTOMER, "one", idempotency_key="k")
        with pytest.raises(IdempotencyConflict):
            await wa.send(CUSTOMER, "two", idempotency_key="k")

    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app), base_url=BASE)
    async with AsyncClient(BASE, "wg_not-a-token", http=http) as stranger:
        with pytest.raises(AuthenticationError) as refused:
            await stranger.get_message("msg_x")
        assert refused.value.code == "invalid_token"


async def test_a_send_whose_answer_was_lost_is_retried_without_a_duplicate(
    gateway: Harness,
) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    flaky = LosesFirstAnswer(httpx.ASGITransport(app=gateway.app))
    async with _client(gateway, flaky) as wa:
        sent = await wa.send(CUSTOMER, "Exactly once")
    assert flaky.requests == 2
    assert sent.replayed is True  # the retry got the first attempt's answer
    await gateway.wait_status(sent.id, "read")
    page = await gateway.client.get("/v1/messages", headers=gateway.auth)
    assert [m["id"] for m in page.json()["data"]] == [sent.id]
    assert sum(1 for p in gateway.sent_to_meta if p["text"]["body"] == "Exactly once") == 1


def test_a_server_that_is_not_there_is_a_clear_error() -> None:
    from wagate.client import Client, ServiceUnavailable

    with (
        Client("http://127.0.0.1:9", "wg_x", max_retries=1) as wa,
        pytest.raises(ServiceUnavailable) as down,
    ):
        wa.get_message("msg_x")
    assert down.value.code == "connection_error"
    assert "127.0.0.1:9" in down.value.message


async def test_send_batch_gives_one_typed_result_per_item(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    items = [
        {"phone": CUSTOMER, "message": "one", "idempotency_key": "b-1"},
        {"phone": CUSTOMER, "message": "two"},  # the client gives it a key of its own
        {"phone": "+919876543210", "message": "closed"},
    ]
    async with _client(gateway) as wa:
        first = await wa.send_batch(items)
        assert [r.ok for r in first] == [True, True, False]
        assert isinstance(first[2].error, OutsideServiceWindow)
        assert first[2].error.status_code == 409
        again = await wa.send_batch(items[:1])
        assert again[0].accepted is not None and again[0].accepted.replayed
        assert again[0].accepted.id == first[0].accepted.id  # type: ignore[union-attr]
        with pytest.raises(ValidationError) as refused:
            await wa.send_batch([])
        assert refused.value.code == "empty_batch"
    async with AsyncClient(BASE, "wg_not_a_token", http=httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app), base_url=BASE
    )) as stranger:  # fmt: skip
        with pytest.raises(AuthenticationError):
            await stranger.send_batch(items)
