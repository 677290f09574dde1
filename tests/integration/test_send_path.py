"""The whole path through HTTP: send, deliver to the sandbox, statuses back by webhook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.harness import Harness
from tests.support.meta_schema import meta_spec_available, validate_message

CUSTOMER = "+14155552671"
OTHER = "+919876543210"


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def test_text_message_goes_queued_to_read(gateway: Harness) -> None:
    reply = await gateway.reply(CUSTOMER, text="Hi, is my order ready?")
    response = await gateway.send(phone=CUSTOMER, message="Yes! *Order 4521* ships _today_.")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["success"] is True
    assert body["id"].startswith("msg_")
    assert body["status"] == "queued"
    assert body["type"] == "text"
    assert body["phone"] == CUSTOMER
    expires = _parse(body["window_expires_at"])
    assert abs((expires - datetime.now(UTC)) - timedelta(hours=24)) < timedelta(seconds=30)
    assert reply["wamid"].startswith("wamid.")

    message = await gateway.wait_status(body["id"], "read")
    assert message["wamid"].startswith("wamid.")
    assert message["message"] == "Yes! *Order 4521* ships _today_."
    assert [h["status"] for h in message["history"]] == [
        "queued",
        "accepted",
        "sent",
        "delivered",
        "read",
    ]
    assert message["error"] is None
    sent = gateway.sent_to_meta[-1]
    assert sent["type"] == "text"
    assert sent["text"]["body"] == "Yes! *Order 4521* ships _today_."
    assert sent["to"].lstrip("+") == CUSTOMER.lstrip("+")


async def test_interactive_message_and_button_tap(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hello")
    response = await gateway.send(
        phone=CUSTOMER,
        message="Confirm your delivery slot?",
        header="Order #4521",
        footer="Reply within 24h",
        buttons=[{"id": "yes", "title": "Yes"}, {"id": "later", "title": "Later"}],
    )
    assert response.status_code == 202, response.text
    assert response.json()["type"] == "interactive"
    message = await gateway.wait_status(response.json()["id"], "read")
    assert message["header"] == "Order #4521"
    assert message["buttons"] == [{"id": "yes", "title": "Yes"}, {"id": "later", "title": "Later"}]
    sent = gateway.sent_to_meta[-1]
    assert sent["type"] == "interactive"
    assert sent["interactive"]["type"] == "button"
    assert sent["interactive"]["header"] == {"type": "text", "text": "Order #4521"}
    assert [b["reply"]["id"] for b in sent["interactive"]["action"]["buttons"]] == ["yes", "later"]

    await gateway.reply(CUSTOMER, button_id="yes")
    conversation = (
        await gateway.client.get(f"/v1/conversations/{CUSTOMER}", headers=gateway.auth)
    ).json()
    tap = next(m for m in conversation["messages"] if m["direction"] == "inbound")
    assert tap["kind"] == "button_reply"
    assert tap["button_id"] == "yes"
    assert tap["text"] == "Yes"


@pytest.mark.skipif(not meta_spec_available(), reason="Meta's API description is not present")
async def test_every_payload_sent_to_meta_matches_metas_message_schema(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hello")
    bodies: list[dict[str, Any]] = [
        {"message": "plain"},
        {"message": "with link https://example.com", "preview_url": True},
        {"message": "émoji 🎉 and *bold*", "buttons": [{"id": "a", "title": "A"}]},
        {
            "message": "all parts",
            "header": "H" * 60,
            "footer": "F" * 60,
            "buttons": [{"id": f"id{i}", "title": f"Title {i}"} for i in range(3)],
        },
    ]
    ids = []
    for body in bodies:
        response = await gateway.send(phone=CUSTOMER, **body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    # Meta's id is what a reply quotes; by "read" (never missed however fast the statuses come)
    # the message has it.
    first = await gateway.wait_status(ids[0], "read")
    response = await gateway.send(phone=CUSTOMER, message="quoted", reply_to=first["id"])
    ids.append(response.json()["id"])
    for message_id in ids:
        await gateway.wait_status(message_id, "read")
    assert len(gateway.sent_to_meta) == len(ids)
    for payload in gateway.sent_to_meta:
        validate_message(payload)
    assert gateway.sent_to_meta[-1]["context"] == {"message_id": first["wamid"]}


async def test_outside_the_window_is_refused_and_nothing_is_queued(gateway: Harness) -> None:
    response = await gateway.send(phone=CUSTOMER, message="Hello?")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "outside_service_window"
    assert "/v1/messages/template" in error["message"]
    listed = (await gateway.client.get("/v1/messages", headers=gateway.auth)).json()
    assert listed["data"] == []
    assert gateway.sent_to_meta == []


async def test_a_late_webhook_does_not_reopen_a_closed_window(gateway: Harness) -> None:
    old = int((datetime.now(UTC) - timedelta(hours=25)).timestamp())
    await gateway.reply(CUSTOMER, text="sent yesterday", timestamp=old)
    conversation = (
        await gateway.client.get(f"/v1/conversations/{CUSTOMER}", headers=gateway.auth)
    ).json()
    assert conversation["window_open"] is False
    assert conversation["last_inbound_at"] is not None
    response = await gateway.send(phone=CUSTOMER, message="Hello?")
    assert response.status_code == 409
    # A fresh message opens it, and the window runs 24 h from when the customer sent it.
    await gateway.reply(CUSTOMER, text="now")
    conversation = (
        await gateway.client.get(f"/v1/conversations/{CUSTOMER}", headers=gateway.auth)
    ).json()
    assert conversation["window_open"] is True
    expires = _parse(conversation["window_expires_at"])
    assert expires - _parse(conversation["last_inbound_at"]) == timedelta(hours=24)
    # An older message arriving late does not move the window back.
    await gateway.reply(CUSTOMER, text="late", timestamp=old + 3600)
    again = (await gateway.client.get(f"/v1/conversations/{CUSTOMER}", headers=gateway.auth)).json()
    assert again["window_expires_at"] == conversation["window_expires_at"]


async def test_template_quick_reply_tap_opens_the_window(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, payload="track-4521", button_text="Track order")
    response = await gateway.send(phone=CUSTOMER, message="Here is your tracking link")
    assert response.status_code == 202, response.text


async def test_form_and_multipart_bodies_with_token_in_the_body(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hello")
    form = await gateway.client.post(
        "/v1/messages",
        data={
            "token": gateway.token,
            "phone": CUSTOMER,
            "message": "Pick one",
            "buttons": '[{"id": "a", "title": "A"}, {"id": "b", "title": "B"}]',
        },
    )
    assert form.status_code == 202, form.text
    assert form.json()["type"] == "interactive"
    multipart = await gateway.client.post(
        "/v1/messages",
        files={
            "token": (None, gateway.token),
            "phone": (None, CUSTOMER),
            "message": (None, "from multipart"),
            "preview_url": (None, "true"),
        },
    )
    assert multipart.status_code == 202, multipart.text
    assert multipart.json()["type"] == "text"
    message = await gateway.wait_status(multipart.json()["id"], "read")
    assert message["preview_url"] is True


async def test_a_queued_message_whose_window_closes_fails_instead_of_sending(
    database_url: str, tmp_path: Any
) -> None:
    from tests.support.harness import running_gateway
    from wagate.clock import ManualClock

    clock = ManualClock()
    async with running_gateway(
        database_url, tmp_path / "data", clock=clock, run_dispatcher=False
    ) as gateway:
        sent_at = int((clock.now() - timedelta(hours=23, minutes=59)).timestamp())
        await gateway.reply(CUSTOMER, text="hello", timestamp=sent_at)
        response = await gateway.send(phone=CUSTOMER, message="soon too late")
        assert response.status_code == 202, response.text
        clock.advance(minutes=5)
        await gateway.dispatcher.drain(timeout=10)
        message = await gateway.message(response.json()["id"])
        assert message["status"] == "failed"
        assert message["error"]["code"] == "outside_service_window"
        assert gateway.sent_to_meta == []


async def test_messages_to_one_customer_go_in_order(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hello")
    ids = []
    for i in range(5):
        response = await gateway.send(phone=CUSTOMER, message=f"part {i}")
        ids.append(response.json()["id"])
    for message_id in ids:
        await gateway.wait_status(message_id, "read")
    assert [p["text"]["body"] for p in gateway.sent_to_meta] == [f"part {i}" for i in range(5)]
