"""What wagate sends to Meta: send bodies (checked against Meta's schema) and CloudClient.

CloudClient is exercised through a real httpx.AsyncClient on a MockTransport that answers with
Meta's own envelopes (examples/send_response.json, examples/error_130429.json).
"""

from __future__ import annotations

import json
import logging
import pickle
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from tests.support import meta_schema
from tests.support.meta_schema import requires_meta_spec
from wagate.cloud import (
    GRAPH_API_VERSION,
    CloudApiError,
    CloudClient,
    SendResult,
    build_message_payload,
)
from wagate.cloud.client import messages_url, parse_retry_after
from wagate.domain.models import Button, MessageContent, MessageType, MetaError

# --------------------------------------------------------------------------- send bodies


def text(body: str, preview_url: bool = False) -> MessageContent:
    return MessageContent(type=MessageType.TEXT, body=body, preview_url=preview_url)


def buttons(
    body: str, *titles: str, header: str | None = None, footer: str | None = None
) -> MessageContent:
    return MessageContent(
        type=MessageType.INTERACTIVE,
        body=body,
        header=header,
        footer=footer,
        buttons=tuple(Button(id=f"b{i}", title=t) for i, t in enumerate(titles, 1)),
    )


def _reply(i: int, title: str) -> dict[str, Any]:
    return {"type": "reply", "reply": {"id": f"b{i}", "title": title}}


BASE = {"messaging_product": "whatsapp", "recipient_type": "individual"}

# (case, to, content, reply_to_wamid, expected body)
PAYLOAD_CASES: list[tuple[str, str, MessageContent, str | None, dict[str, Any]]] = [
    (
        "text",
        "+919876543210",
        text("Hello"),
        None,
        {
            **BASE,
            "to": "+919876543210",
            "type": "text",
            "text": {"body": "Hello", "preview_url": False},
        },
    ),
    (
        "text with preview_url",
        "14155552671",
        text("See https://example.com", preview_url=True),
        None,
        {
            **BASE,
            "to": "14155552671",
            "type": "text",
            "text": {"body": "See https://example.com", "preview_url": True},
        },
    ),
    (
        "text formatting passes through",
        "+14155552671",
        text("*bold* _italic_ ~strike~ ```mono```\nline 2"),
        None,
        {
            **BASE,
            "to": "+14155552671",
            "type": "text",
            "text": {"body": "*bold* _italic_ ~strike~ ```mono```\nline 2", "preview_url": False},
        },
    ),
    (
        "text unicode",
        "+919876543210",
        text("नमस्ते 👋🏽 مرحبا — «ok»"),
        None,
        {
            **BASE,
            "to": "+919876543210",
            "type": "text",
            "text": {"body": "नमस्ते 👋🏽 مرحبا — «ok»", "preview_url": False},
        },
    ),
    (
        "text reply",
        "+919876543210",
        text("Sure"),
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
        {
            **BASE,
            "to": "+919876543210",
            "type": "text",
            "text": {"body": "Sure", "preview_url": False},
            "context": {
                "message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
            },
        },
    ),
    (
        "text at 4096 characters",
        "+919876543210",
        text("x" * 4096),
        None,
        {
            **BASE,
            "to": "+919876543210",
            "type": "text",
            "text": {"body": "x" * 4096, "preview_url": False},
        },
    ),
    (
        "1 button, no header or footer",
        "+919876543210",
        buttons("Confirm?", "Yes"),
        None,
        {
            **BASE,
            "to": "+919876543210",
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Confirm?"},
                "action": {"buttons": [_reply(1, "Yes")]},
            },
        },
    ),
    (
        "3 buttons with header and footer",
        "+14155552671",
        buttons(
            "Pick a slot", "Morning", "Afternoon", "Evening", header="Delivery", footer="Reply"
        ),
        None,
        {
            **BASE,
            "to": "+14155552671",
            "type": "interactive",
            "interactive": {
                "type": "button",
                "header": {"type": "text", "text": "Delivery"},
                "body": {"text": "Pick a slot"},
                "footer": {"text": "Reply"},
                "action": {
                    "buttons": [_reply(1, "Morning"), _reply(2, "Afternoon"), _reply(3, "Evening")]
                },
            },
        },
    ),
    (
        "header only",
        "+14155552671",
        buttons("Body", "Ok", header="Head"),
        None,
        {
            **BASE,
            "to": "+14155552671",
            "type": "interactive",
            "interactive": {
                "type": "button",
                "header": {"type": "text", "text": "Head"},
                "body": {"text": "Body"},
                "action": {"buttons": [_reply(1, "Ok")]},
            },
        },
    ),
    (
        "footer only, as a reply",
        "+14155552671",
        buttons("Body", "Ok", "No", footer="Foot"),
        "wamid.ABC",
        {
            **BASE,
            "to": "+14155552671",
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Body"},
                "footer": {"text": "Foot"},
                "action": {"buttons": [_reply(1, "Ok"), _reply(2, "No")]},
            },
            "context": {"message_id": "wamid.ABC"},
        },
    ),
    (
        "interactive unicode at the limits",
        "+919876543210",
        buttons("ब" * 1024, "✅ " + "y" * 18, "❌ नहीं", header="ह" * 60, footer="🙂" * 60),
        None,
        {
            **BASE,
            "to": "+919876543210",
            "type": "interactive",
            "interactive": {
                "type": "button",
                "header": {"type": "text", "text": "ह" * 60},
                "body": {"text": "ब" * 1024},
                "footer": {"text": "🙂" * 60},
                "action": {"buttons": [_reply(1, "✅ " + "y" * 18), _reply(2, "❌ नहीं")]},
            },
        },
    ),
]


@pytest.mark.parametrize(
    ("to", "content", "reply_to", "expected"),
    [pytest.param(to, c, r, e, id=name) for name, to, c, r, e in PAYLOAD_CASES],
)
def test_build_message_payload(
    to: str, content: MessageContent, reply_to: str | None, expected: dict[str, Any]
) -> None:
    payload = build_message_payload(to=to, content=content, reply_to_wamid=reply_to)
    assert payload == expected
    json.dumps(payload)  # plain JSON


@requires_meta_spec
@pytest.mark.parametrize(
    ("to", "content", "reply_to"),
    [pytest.param(to, c, r, id=name) for name, to, c, r, _ in PAYLOAD_CASES],
)
def test_built_payload_matches_metas_schema(
    to: str, content: MessageContent, reply_to: str | None
) -> None:
    meta_schema.validate_message(
        build_message_payload(to=to, content=content, reply_to_wamid=reply_to)
    )


def test_round_tripped_content_builds_the_same_payload() -> None:
    content = buttons("Body", "A", "B", header="H")
    again = MessageContent.from_dict(content.as_dict())
    assert build_message_payload(to="+1", content=again) == build_message_payload(
        to="+1", content=content
    )


@pytest.mark.parametrize(
    ("to", "content", "message"),
    [
        (
            "+1",
            MessageContent(type=MessageType.TEMPLATE, body="order_confirmation"),
            "needs its template",
        ),
        ("+1", MessageContent(type=MessageType.INTERACTIVE, body="Hi", header="H"), "button"),
        ("", text("Hi"), "recipient"),
    ],
)
def test_build_message_payload_refuses(to: str, content: MessageContent, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_message_payload(to=to, content=content)


# --------------------------------------------------------------------------- CloudClient

TOKEN = "EAAGm0PX4ZCpsBA-secret-token-xyz"
GRAPH = "https://graph.facebook.com"
PHONE_NUMBER_ID = "106540352242922"

SEND_RESPONSE = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
    "messages": [{"id": "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"}],
}
ERROR_130429 = {
    "error": {
        "message": "(#130429) Rate limit hit",
        "type": "OAuthException",
        "code": 130429,
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "Cloud API message throughput has been reached.",
        },
        "error_subcode": 2494055,
        "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
    }
}


def meta_example(name: str, fallback: dict[str, Any]) -> Any:
    """Meta's example file when present (the inline copy is identical)."""
    if meta_schema.meta_spec_available() and (meta_schema.meta_examples_dir() / name).is_file():
        return meta_schema.load_meta_example(name)
    return fallback


def test_inline_copies_match_metas_examples() -> None:
    if not (meta_schema.meta_examples_dir() / "send_response.json").is_file():
        pytest.skip("Meta's examples are not present")
    assert meta_schema.load_meta_example("send_response.json") == SEND_RESPONSE
    assert meta_schema.load_meta_example("error_130429.json") == ERROR_130429


PAYLOAD = build_message_payload(to="+16505551234", content=text("Hello"))


async def send(handler: Any, *, graph_url: str = GRAPH, payload: dict[str, Any] = PAYLOAD) -> Any:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        return await CloudClient(http).send_message(
            graph_url=graph_url,
            version=GRAPH_API_VERSION,
            phone_number_id=PHONE_NUMBER_ID,
            access_token=TOKEN,
            payload=payload,
        )


async def send_error(handler: Any) -> CloudApiError:
    with pytest.raises(CloudApiError) as info:
        await send(handler)
    error = info.value
    for text_ in (str(error), repr(error), error.title, error.details):
        assert TOKEN not in text_
    return error


async def test_send_success_posts_metas_shape_and_returns_wamid() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=meta_example("send_response.json", SEND_RESPONSE))

    result = await send(handler)
    assert result == SendResult(
        wamid="wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA", wa_id="16505551234"
    )
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == f"{GRAPH}/v23.0/{PHONE_NUMBER_ID}/messages"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == PAYLOAD


def test_graph_api_version() -> None:
    assert GRAPH_API_VERSION == "v23.0"


@pytest.mark.parametrize(
    ("graph_url", "expected"),
    [
        ("https://graph.facebook.com", "https://graph.facebook.com/v23.0/123/messages"),
        ("https://graph.facebook.com/", "https://graph.facebook.com/v23.0/123/messages"),
        (
            "http://127.0.0.1:8080/sandbox/graph",
            "http://127.0.0.1:8080/sandbox/graph/v23.0/123/messages",
        ),
    ],
)
def test_messages_url(graph_url: str, expected: str) -> None:
    assert messages_url(graph_url, "v23.0", "123") == expected


async def test_send_to_a_base_url_with_a_path() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=SEND_RESPONSE)

    await send(handler, graph_url="http://sandbox.local/sandbox/graph/")
    assert seen == [f"http://sandbox.local/sandbox/graph/v23.0/{PHONE_NUMBER_ID}/messages"]


async def test_send_success_message_status() -> None:
    body = {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
        "messages": [{"id": "wamid.X", "message_status": "accepted"}],
    }
    result = await send(lambda request: httpx.Response(200, json=body))
    assert result == SendResult(wamid="wamid.X", wa_id="16505551234", message_status="accepted")


async def test_throttling_error_with_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json=meta_example("error_130429.json", ERROR_130429),
            headers={"Retry-After": "30"},
        )

    error = await send_error(handler)
    assert error.meta_code == 130429
    assert error.title == "Rate limit hit"
    assert error.details == "Cloud API message throughput has been reached."
    assert error.http_status == 400
    assert error.retry_after == 30.0
    assert error.error_subcode == 2494055
    assert error.fbtrace_id == "Az8or2yhqkZfEZ-_4Qn_Bam"
    assert error.error_type == "OAuthException"
    assert not error.is_network_error
    assert error.meta_error == MetaError(
        130429, "Rate limit hit", "Cloud API message throughput has been reached."
    )
    assert "130429" in str(error) and "Rate limit hit" in str(error)


@requires_meta_spec
def test_error_fixture_is_metas_shape() -> None:
    meta_schema.validate_error_response(ERROR_130429)
    meta_schema.validate_send_response(SEND_RESPONSE)


@pytest.mark.parametrize(
    ("envelope", "code", "title", "details", "subcode"),
    [
        (
            {
                "error": {
                    "message": "(#131026) Message Undeliverable.",
                    "type": "OAuthException",
                    "code": 131026,
                    "error_data": {"messaging_product": "whatsapp", "details": "Undeliverable"},
                    "fbtrace_id": "AbC",
                }
            },
            131026,
            "Message Undeliverable.",
            "Undeliverable",
            None,
        ),
        (
            {
                "error": {
                    "message": "Invalid OAuth access token - Cannot parse access token",
                    "type": "OAuthException",
                    "code": 190,
                    "fbtrace_id": "AbC",
                }
            },
            190,
            "Invalid OAuth access token - Cannot parse access token",
            "",
            None,
        ),
        (
            {
                "error": {
                    "message": "(#100) Invalid parameter",
                    "type": "OAuthException",
                    "code": "100",
                    "error_subcode": "2494010",
                    "error_user_title": "Invalid recipient",
                    "error_user_msg": "The recipient is not a valid WhatsApp user.",
                }
            },
            100,
            "Invalid recipient",
            "The recipient is not a valid WhatsApp user.",
            2494010,
        ),
        ({"error": {"type": "GraphMethodException"}}, None, "HTTP 400", "", None),
    ],
    ids=["131026", "no error_data", "user title, string codes", "bare"],
)
async def test_meta_error_envelopes(
    envelope: dict[str, Any], code: int | None, title: str, details: str, subcode: int | None
) -> None:
    error = await send_error(lambda request: httpx.Response(400, json=envelope))
    assert (error.meta_code, error.title, error.details, error.error_subcode) == (
        code,
        title,
        details,
        subcode,
    )
    assert error.http_status == 400
    assert error.retry_after is None


async def test_server_error_with_html_body() -> None:
    html = "<html><head><title>500</title></head><body><h1>Internal Server Error</h1></body></html>"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text=html, headers={"Content-Type": "text/html"})

    error = await send_error(handler)
    assert error.meta_code is None
    assert error.http_status == 500
    assert error.title == "HTTP 500"
    # Described, not quoted: a Graph URL is configurable, and another server's page must not
    # be reflected to whoever reads the error.
    assert (
        error.details
        == f"an HTTP 500 answer of {len(html)} bytes of text/html, not Meta's error object"
    )
    assert "Internal Server Error" not in str(error)
    assert error.retry_after is None


async def test_an_error_body_echoing_the_token_is_not_reflected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        echo = f"bad token {TOKEN} " + "x" * 5000
        return httpx.Response(401, text=echo)

    error = await send_error(handler)
    assert TOKEN not in repr(error) and TOKEN not in str(error) and "xxxx" not in error.details
    assert len(error.details) <= 501


async def test_error_envelope_echoing_the_token_is_scrubbed() -> None:
    envelope = {"error": {"message": f"Bad token {TOKEN}", "type": "OAuthException", "code": 190}}
    error = await send_error(lambda request: httpx.Response(401, json=envelope))
    assert error.meta_code == 190
    assert error.title == "Bad token [access token]"


async def test_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    error = await send_error(handler)
    assert (error.meta_code, error.http_status, error.title) == (None, None, "timeout")
    assert error.is_network_error
    assert error.__cause__ is None and error.__suppress_context__


async def test_connect_timeout_is_a_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("connect timed out", request=request)

    error = await send_error(handler)
    assert error.title == "timeout"


async def test_connection_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"[Errno 111] Connection refused ({TOKEN})", request=request)

    error = await send_error(handler)
    assert (error.meta_code, error.http_status, error.title) == (None, None, "connection error")
    assert "Connection refused" in error.details


async def test_remote_protocol_error_is_a_connection_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    error = await send_error(handler)
    assert error.title == "connection error"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="OK"),
        httpx.Response(200, json={"messaging_product": "whatsapp", "messages": []}),
        httpx.Response(200, json={"messaging_product": "whatsapp", "messages": [{"id": ""}]}),
        httpx.Response(200, json=["wamid.X"]),
    ],
    ids=["not json", "no messages", "empty id", "a list"],
)
async def test_success_without_a_wamid_is_an_error(response: httpx.Response) -> None:
    error = await send_error(lambda request: response)
    assert error.title == "invalid response"
    assert error.http_status == 200
    assert error.meta_code is None


async def test_token_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await send(lambda request: httpx.Response(200, json=SEND_RESPONSE))
    with pytest.raises(CloudApiError):
        await send(lambda request: httpx.Response(400, json=ERROR_130429))
    assert TOKEN not in caplog.text


NOW = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("30", 30.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


def test_cloud_api_error_pickles() -> None:
    error = CloudApiError(130429, "Rate limit hit", "details", 400, 30.0, 2494055, "Az8", "OAuth")
    again = pickle.loads(pickle.dumps(error))
    assert repr(again) == repr(error) and str(again) == str(error)
    assert again.error_type == "OAuth"
