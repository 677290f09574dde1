"""Templates on Meta's side: the send body built for a template (checked against Meta's `Message`
schema), and the template listing fetched page by page from the sandbox's Graph API (in
process) or from a stand-in for Meta answering what the sandbox does not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support import meta_schema
from tests.support.meta_schema import requires_meta_spec
from tests.unit.test_templates import (
    HELLO,
    ORDER,
    REMINDER,
    REMINDER_PARAMS,
    SALE,
    SALE_PARAMS,
    SPEC_PARAMS,
)
from wagate.cloud import build_message_payload
from wagate.cloud.client import CloudApiError
from wagate.cloud.templates import fetch_templates, templates_url
from wagate.domain.models import MessageContent, MessageType, TemplateContent
from wagate.domain.templates import Template, fill_template
from wagate.sandbox import SandboxConfig, create_sandbox_app

TOKEN = "sandbox-secret-token"
WABA = "200000000000001"
GRAPH = "http://graph.test/graph"

CONTENTS: list[tuple[str, Template, dict[str, Any]]] = [
    ("named", ORDER, SPEC_PARAMS),
    ("numbered", REMINDER, REMINDER_PARAMS),
    ("image header", SALE, SALE_PARAMS),
    ("image by id", SALE, {**SALE_PARAMS, "header": {"image": {"id": "987654321"}}}),
    ("no parameters", HELLO, {}),
]


@requires_meta_spec
@pytest.mark.parametrize(("case", "template", "params"), CONTENTS, ids=[c[0] for c in CONTENTS])
@pytest.mark.parametrize(
    "reply_to", [None, "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"]
)
def test_template_bodies_match_metas_message_schema(
    case: str, template: Template, params: dict[str, Any], reply_to: str | None
) -> None:
    content = fill_template(template, params)
    payload = build_message_payload(to="+919876543210", content=content, reply_to_wamid=reply_to)
    meta_schema.validate_message(payload)
    assert payload["type"] == "template"
    assert payload["template"]["name"] == template.name
    assert payload["template"]["language"] == {"policy": "deterministic", "code": "en_US"}
    if content.template and content.template.components:
        assert payload["template"]["components"] == list(content.template.components)
    else:
        assert "components" not in payload["template"]
    assert payload.get("context") == ({"message_id": reply_to} if reply_to else None)


def test_a_stored_template_message_builds_the_same_body() -> None:
    content = fill_template(ORDER, SPEC_PARAMS)
    stored = MessageContent.from_dict(content.as_dict())
    assert build_message_payload(to="+1", content=stored) == build_message_payload(
        to="+1", content=content
    )
    bare = MessageContent(MessageType.TEMPLATE, "x", template=TemplateContent("hello_world", "en"))
    assert build_message_payload(to="+1", content=bare)["template"] == {
        "name": "hello_world",
        "language": {"policy": "deterministic", "code": "en"},
    }


# --------------------------------------------------------------------------- fetching


def sandbox_client() -> httpx.AsyncClient:
    config = SandboxConfig(
        phone_number_id="100000000000001",
        waba_id=WABA,
        display_phone_number="15550000001",
        access_token=TOKEN,
        app_secret="s",
        webhook_url="http://127.0.0.1:9/hooks",
    )
    app = create_sandbox_app(config)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://graph.test")


async def fetch(http: httpx.AsyncClient, **kwargs: Any) -> list[Template]:
    args: dict[str, Any] = {"graph_url": GRAPH, "version": "v23.0", "waba_id": WABA,
                            "access_token": TOKEN} | kwargs  # fmt: skip
    return await fetch_templates(http, **args)


@pytest.mark.parametrize("page_size", [1, 5, 100])
async def test_every_page_of_the_sandbox_is_read(page_size: int) -> None:
    async with sandbox_client() as http:
        found = await fetch(http, page_size=page_size)
    assert [(t.name, t.language, t.status) for t in found] == [
        ("hello_world", "en_US", "APPROVED"),
        ("order_confirmation", "en_US", "APPROVED"),
        ("appointment_reminder", "en_US", "APPROVED"),
        ("appointment_reminder", "pt_BR", "APPROVED"),
        ("summer_sale", "en_US", "APPROVED"),
        ("winter_promo", "en_US", "REJECTED"),
    ]
    assert found[1] == ORDER  # every field Meta gives, parameter_format included


async def test_metas_refusals_come_back_as_cloud_api_errors() -> None:
    async with sandbox_client() as http:
        with pytest.raises(CloudApiError) as caught:
            await fetch(http, access_token="wrong-token")
        assert (caught.value.meta_code, caught.value.http_status) == (190, 401)
        assert "wrong-token" not in str(caught.value)
        with pytest.raises(CloudApiError) as unknown:
            await fetch(http, waba_id="999")
        assert unknown.value.meta_code == 100


async def test_a_closed_port_is_a_connection_error() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(CloudApiError) as caught:
            await fetch(http, graph_url="http://127.0.0.1:9/graph")
    assert caught.value.title == "connection error" and caught.value.is_network_error


def meta_like(answer: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    """A stand-in for graph.facebook.com answering what the sandbox never does."""
    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def entry(name: str) -> dict[str, Any]:
    return {"name": name, "language": "en_US", "status": "APPROVED", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi"}], "id": name}  # fmt: skip


async def test_a_next_link_to_another_host_is_not_followed_the_cursor_is() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "after" not in request.url.params:
            return httpx.Response(200, json={"data": [entry("a")], "paging": {
                "cursors": {"before": "0", "after": "c1"},
                "next": "https://evil.example/steal?after=c1"}})  # fmt: skip
        return httpx.Response(200, json={"data": [entry("b")], "paging": {"cursors": {}}})

    async with meta_like(answer) as http:
        found = await fetch(http)
    assert [t.name for t in found] == ["a", "b"]
    assert {r.url.host for r in seen} == {"graph.test"}
    assert seen[1].url.params["after"] == "c1"
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in seen)
    assert str(seen[0].url).startswith(templates_url(GRAPH, "v23.0", WABA))


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (httpx.Response(200, text="<html>oops</html>"), "no `data` list"),
        (httpx.Response(200, json={"data": {"name": "x"}}), "no `data` list"),
        (httpx.Response(200, json={"data": [{"name": "x"}]}), "a template in Meta's answer"),
        (
            httpx.Response(500, text="Internal Server Error"),
            "an HTTP 500 answer of 21 bytes of text/plain, not Meta's error object",
        ),
    ],
)
async def test_an_answer_that_is_not_a_template_list_is_an_error(
    answer: httpx.Response, words: str
) -> None:
    async with meta_like(lambda _: answer) as http:
        with pytest.raises(CloudApiError) as caught:
            await fetch(http)
    assert words in caught.value.details
    # What another server said is described, never quoted (a Graph URL is configurable).
    assert "oops" not in str(caught.value) and "Internal Server Error" not in str(caught.value)


async def test_a_server_repeating_its_cursor_does_not_loop_forever() -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        again = f"{GRAPH}/v23.0/{WABA}/message_templates?after=same"
        paging = {"cursors": {"after": "same"}, "next": again}
        return httpx.Response(200, json={"data": [entry("a")], "paging": paging})

    async with meta_like(answer) as http:
        found = await fetch(http)
    assert [t.name for t in found] == ["a"] and calls == 2
