"""Send Template through HTTP against the sandbox (SQLite and PostgreSQL): checked against the
synced template before anything is queued, sent outside the window without opening it, the
payload valid against Meta's `Message` schema, and Meta's refusals kept on the message."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests.support.harness import Harness
from tests.support.meta_schema import meta_spec_available, validate_message
from wagate.store.db import write_tx
from wagate.store.tables import accounts, templates

CUSTOMER = "+919876543210"
# SPEC §1's example, exactly as written.
SPEC_EXAMPLE: dict[str, Any] = {
    "phone": "+919876543210",
    "template": "order_confirmation",
    "language": "en_US",
    "params": {
        "header": ["#4521"],
        "body": {"first_name": "Asha", "order_number": "4521"},
        "buttons": [{"index": 0, "payload": "track-4521"}, {"index": 1, "text": "4521"}],
    },
}


@pytest.fixture
async def synced(gateway: Harness) -> Harness:
    response = await gateway.client.post("/v1/templates/sync", headers=gateway.auth)
    assert response.status_code == 200, response.text
    return gateway


async def send(gateway: Harness, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    headers = {**gateway.auth, **kwargs.pop("headers", {})}
    return await gateway.client.post("/v1/messages/template", json=body, headers=headers)


def problems(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == error["errors"][0]["code"]
    return [(e["field"], e["code"]) for e in error["errors"]]


async def nothing_queued(gateway: Harness) -> None:
    listed = (await gateway.client.get("/v1/messages", headers=gateway.auth)).json()
    assert listed["data"] == []
    assert gateway.sent_to_meta == []


async def test_the_spec_example_goes_out_outside_the_window(synced: Harness) -> None:
    response = await send(synced, SPEC_EXAMPLE)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["success"] is True and body["id"].startswith("msg_")
    assert (body["status"], body["type"], body["phone"]) == ("queued", "template", CUSTOMER)
    assert body["window_expires_at"] is None  # the customer never wrote: no window

    message = await synced.wait_status(body["id"], "read")
    assert [h["status"] for h in message["history"]] == [
        "queued",
        "accepted",
        "sent",
        "delivered",
        "read",
    ]
    # What the customer sees, for the message views and the dashboard.
    assert message["message"] == (
        "Hi Asha, your order 4521 is confirmed. We will let you know when it ships."
    )
    assert message["header"] == "Order #4521"
    assert message["footer"] == "Thank you for shopping with us"
    assert message["buttons"] == [
        {"id": "track-4521", "title": "Track order"},
        {"id": "https://shop.example.com/orders/4521", "title": "View order"},
    ]
    assert message["template"] == {"name": "order_confirmation", "language": "en_US"}
    [sent] = synced.sent_to_meta
    assert sent["type"] == "template"
    assert sent["template"] == {
        "name": "order_confirmation",
        "language": {"policy": "deterministic", "code": "en_US"},
        "components": [
            {"type": "header", "parameters": [
                {"type": "text", "parameter_name": "order_id", "text": "#4521"}]},
            {"type": "body", "parameters": [
                {"type": "text", "parameter_name": "first_name", "text": "Asha"},
                {"type": "text", "parameter_name": "order_number", "text": "4521"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0",
             "parameters": [{"type": "payload", "payload": "track-4521"}]},
            {"type": "button", "sub_type": "url", "index": "1",
             "parameters": [{"type": "text", "text": "4521"}]},
        ],
    }  # fmt: skip
    # A template does not open the window: a free-form message is still refused.
    conversation = await synced.client.get(f"/v1/conversations/{CUSTOMER}", headers=synced.auth)
    assert conversation.json()["window_open"] is False
    free = await synced.send(phone=CUSTOMER, message="Thanks!")
    assert free.status_code == 409
    # The customer taps the quick reply: its payload comes back, and the window opens.
    await synced.reply(CUSTOMER, payload="track-4521", button_text="Track order")
    assert (await synced.send(phone=CUSTOMER, message="Here it is")).status_code == 202


@pytest.mark.skipif(not meta_spec_available(), reason="Meta's API description is not present")
async def test_every_template_payload_matches_metas_message_schema(synced: Harness) -> None:
    listed = (await synced.client.get("/v1/templates", headers=synced.auth)).json()["data"]
    ids = []
    for template in listed:
        if template["status"] != "APPROVED":
            continue
        body = {
            "phone": CUSTOMER,
            "template": template["name"],
            "language": template["language"],
            "params": template["example_params"],
        }
        response = await send(synced, body)
        assert response.status_code == 202, (template["name"], response.text)
        ids.append(response.json()["id"])
    first = await synced.wait_status(ids[0], "read")  # its wamid is known by then
    # Left-out language (one language only), a quoted message, and a media header by id.
    quoted = {"phone": CUSTOMER, "template": "hello_world", "reply_to": first["id"]}
    by_id = {
        "phone": CUSTOMER,
        "template": "summer_sale",
        "params": {"header": {"image": {"id": "1234567890"}}, "body": ["Asha", "SUN20"],
                   "buttons": [{"index": 0, "text": "SUN20"}]},
    }  # fmt: skip
    for body in (quoted, by_id):
        response = await send(synced, body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    for message_id in ids:
        await synced.wait_status(message_id, "read")
    assert len(synced.sent_to_meta) == 7
    for payload in synced.sent_to_meta:
        validate_message(payload)
    assert synced.sent_to_meta[-2]["context"] == {"message_id": first["wamid"]}
    assert synced.sent_to_meta[-2]["template"]["language"]["code"] == "en_US"


@pytest.mark.parametrize(
    ("change", "expected", "words"),
    [
        ({"template": "order_confirmaton"}, [("template", "template_not_found")],
         "no template named"),
        ({"language": "de_DE"}, [("template", "template_not_found")],
         "exists in en_US but not in"),
        ({"template": "winter_promo", "params": {"body": ["Asha"]}},
         [("template", "template_not_found")], "rejected"),
        ({"template": "appointment_reminder", "language": None},
         [("language", "missing_field")], "exists in en_US, pt_BR"),
        ({"template": None}, [("template", "missing_field")], "template is required"),
    ],
)  # fmt: skip
async def test_an_unknown_or_unapproved_template_is_refused(
    synced: Harness, change: dict[str, Any], expected: list[tuple[str, str]], words: str
) -> None:
    body = {k: v for k, v in (SPEC_EXAMPLE | change).items() if v is not None}
    response = await send(synced, body)
    assert problems(response) == expected
    assert words in response.json()["error"]["message"]
    await nothing_queued(synced)


async def test_a_template_not_synced_yet_is_not_found(gateway: Harness) -> None:
    response = await send(gateway, SPEC_EXAMPLE)
    assert problems(response) == [("template", "template_not_found")]
    assert "POST /v1/templates/sync" in response.json()["error"]["message"]
    await nothing_queued(gateway)


async def test_every_mismatch_is_listed_at_once(synced: Harness) -> None:
    body = {
        "phone": "+91 98765 43210",
        "template": "order_confirmation",
        "params": {
            "header": ["#4521", "extra"],
            "body": {"first_name": "Asha\nDear", "nickname": "A"},
            "buttons": [{"index": 0, "text": "x"}, {"index": 5, "payload": "p"}],
        },
        "metadata": "not an object",
    }
    response = await send(synced, body)
    assert problems(response) == [
        ("phone", "invalid_phone_format"),
        ("params.header[1]", "template_params_mismatch"),
        ("params.body.first_name", "invalid_template_param"),
        ("params.body.order_number", "template_params_mismatch"),
        ("params.body.nickname", "template_params_mismatch"),
        ("params.buttons[0].text", "template_params_mismatch"),
        ("params.buttons[1]", "template_params_mismatch"),
        ("params.buttons", "template_params_mismatch"),
        ("metadata", "invalid_metadata"),
    ]
    messages = {e["field"]: e["message"] for e in response.json()["error"]["errors"]}
    assert "is missing" in messages["params.body.order_number"]
    assert "is extra" in messages["params.body.nickname"]
    assert '"payload", not a "text"' in messages["params.buttons[0].text"]
    await nothing_queued(synced)


async def test_named_and_numbered_bodies_must_be_the_right_kind(synced: Harness) -> None:
    named_as_list = SPEC_EXAMPLE | {"params": {**SPEC_EXAMPLE["params"], "body": ["Asha", "1"]}}
    assert problems(await send(synced, named_as_list)) == [
        ("params.body", "template_params_mismatch")
    ]
    numbered_as_object = {
        "phone": CUSTOMER,
        "template": "appointment_reminder",
        "language": "en_US",
        "params": {"header": ["26 November"], "body": {"1": "Asha"}},
    }
    assert problems(await send(synced, numbered_as_object)) == [
        ("params.body", "template_params_mismatch")
    ]
    short = numbered_as_object | {"params": {"header": ["26 November"], "body": ["Asha"]}}
    assert problems(await send(synced, short)) == [
        ("params.body[1]", "template_params_mismatch"),
        ("params.body[2]", "template_params_mismatch"),
    ]
    await nothing_queued(synced)


async def test_values_must_respect_metas_limits(synced: Harness) -> None:
    cases = [
        ({"header": ["#" * 60]}, "params.header[0]", "template_param_too_long"),
        ({"body": {"first_name": "A     B", "order_number": "1"}}, "params.body.first_name",
         "invalid_template_param"),
        ({"body": {"first_name": "Asha", "order_number": "\t1"}}, "params.body.order_number",
         "invalid_template_param"),
        ({"body": {"first_name": "x" * 1000, "order_number": "1"}}, "params.body",
         "template_param_too_long"),
        ({"buttons": [{"index": 0, "payload": "p" * 257}, {"index": 1, "text": "4521"}]},
         "params.buttons[0].payload", "template_param_too_long"),
        ({"buttons": [{"index": 1, "text": "45 21"}]}, "params.buttons[0].text",
         "invalid_template_param"),
    ]  # fmt: skip
    for change, field, code in cases:
        body = SPEC_EXAMPLE | {"params": SPEC_EXAMPLE["params"] | change}
        assert problems(await send(synced, body)) == [(field, code)], change
    await nothing_queued(synced)


async def test_form_and_multipart_bodies_with_the_token_in_the_body(synced: Harness) -> None:
    fields = {
        "token": synced.token,
        "phone": CUSTOMER,
        "template": "appointment_reminder",
        "language": "pt_BR",
        "params": json.dumps({"header": ["26 de novembro"], "body": ["Asha", "Dra. Rao", "10:00"]}),
        "metadata": '{"booking": "B-17"}',
    }
    form = await synced.client.post("/v1/messages/template", data=fields)
    assert form.status_code == 202, form.text
    multipart = await synced.client.post(
        "/v1/messages/template", files={k: (None, v) for k, v in fields.items()}
    )
    assert multipart.status_code == 202, multipart.text
    message = await synced.wait_status(form.json()["id"], "read")
    assert message["message"].startswith("Olá Asha, lembramos a sua consulta com Dra. Rao")
    assert message["metadata"] == {"booking": "B-17"}
    assert message["buttons"] == [
        {"id": "Confirmar", "title": "Confirmar"},
        {"id": "Remarcar", "title": "Remarcar"},
    ]
    broken = await synced.client.post("/v1/messages/template", data=fields | {"params": "{"})
    assert problems(broken) == [("params", "invalid_field")]


async def test_the_token_is_checked_first(synced: Harness) -> None:
    missing = await synced.client.post("/v1/messages/template", json=SPEC_EXAMPLE)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_token"
    wrong = await synced.client.post(
        "/v1/messages/template", json={"template": 5}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_token"
    unknown = await send(synced, SPEC_EXAMPLE | {"channel": "ch_nope"})
    assert problems(unknown) == [("channel", "unknown_channel")]


async def test_a_repeated_idempotency_key_sends_once(synced: Harness) -> None:
    headers = {"Idempotency-Key": "order-4521-confirmation"}
    first = await send(synced, SPEC_EXAMPLE, headers=headers)
    again = await send(synced, SPEC_EXAMPLE, headers=headers)
    assert first.status_code == again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    other = SPEC_EXAMPLE | {"params": SPEC_EXAMPLE["params"] | {"header": ["#4522"]}}
    conflict = await send(synced, other, headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    await synced.wait_status(first.json()["id"], "read")
    assert len(synced.sent_to_meta) == 1


async def test_metas_refusal_of_a_stale_copy_fails_the_message(synced: Harness) -> None:
    """The synced copy says the body has one parameter, Meta's template has two: Meta's 132000
    comes back as a failed status with its code, as for any message."""
    stale = [
        {"type": "BODY", "text": "Hi {{1}}, everything must go!"},
    ]
    async with write_tx(synced.engine) as conn:
        await conn.execute(
            update(templates).where(templates.c.name == "summer_sale").values(components=stale)
        )
    body = {"phone": CUSTOMER, "template": "summer_sale", "params": {"body": ["Asha"]}}
    response = await send(synced, body)
    assert response.status_code == 202, response.text
    message = await synced.wait_status(response.json()["id"], "failed")
    assert message["error"]["code"] == "template_params_mismatch"
    assert message["error"]["meta_code"] == 132000
    assert message["attempts"] == 1  # a permanent error: not retried


async def test_a_template_send_counts_once_against_the_api_rate(synced: Harness) -> None:
    """An account allowed 1 request/s with bursts to 2 can send two templates at once (each is
    counted once, checked or not), and a refused request counts too."""
    async with write_tx(synced.engine) as conn:
        await conn.execute(update(accounts).values(api_rate=1))
    hello = {"phone": CUSTOMER, "template": "hello_world"}
    assert [(await send(synced, hello)).status_code for _ in range(2)] == [202, 202]
    refused = [await send(synced, {"template": "nope"}) for _ in range(3)]
    limited = next(r for r in refused if r.status_code == 429)
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
