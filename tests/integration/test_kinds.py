"""The SPEC §8 kinds end to end (issue 14 points 1, 2, 5, 6): each endpoint through the one
accept path to the sandbox and back (statuses), every payload as Meta's schema says, forms,
idempotency, the window, reactions and read receipts pointing at real messages, batches, and
every non-media inbound kind from the sandbox's customer to the conversation API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.support.harness import Harness
from tests.support.meta_schema import (
    meta_spec_available,
    validate_message,
    validate_read_receipt,
    validate_webhook,
)
from tests.support.tenants import add_channel, add_tenant, open_window
from wagate.store.tables import webhook_events

CUSTOMER = "+14155552671"
OTHER = "+919876543210"
ROWS = [{"id": "s", "title": "Small"}, {"id": "m", "title": "Medium", "description": "Two"}]

BODIES: dict[str, dict[str, Any]] = {
    "list": {"message": "Pick a size", "button": "Sizes", "sections": [{"rows": ROWS}]},
    "cta": {"message": "Track it", "button": "Track", "url": "https://example.com/t/1"},
    "location": {"latitude": 12.9716, "longitude": 77.5946, "name": "Shop", "address": "MG Rd"},
    "location-request": {"message": "Where should we deliver?"},
    "contacts": {
        "contacts": [
            {
                "name": {"formatted_name": "Asha Rao"},
                "phones": [{"phone": "+919876543210", "type": "WORK"}],
            }
        ]
    },
}
TYPES = {"location-request": "location_request"}


async def post(gateway: Harness, path: str, **body: Any) -> httpx.Response:
    return await gateway.client.post(path, json=body, headers=gateway.auth)


def check_sent(payload: dict[str, Any]) -> None:
    if not meta_spec_available():
        return
    if payload.get("status") == "read":
        validate_read_receipt(payload)
    else:
        validate_message(payload)


@pytest.mark.parametrize("kind", list(BODIES))
async def test_each_kind_goes_queued_to_read(gateway: Harness, kind: str) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    response = await post(gateway, f"/v1/messages/{kind}", phone=CUSTOMER, **BODIES[kind])
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["type"] == TYPES.get(kind, kind)
    assert body["status"] == "queued" and body["window_expires_at"]
    message = await gateway.wait_status(body["id"], "read")
    assert [h["status"] for h in message["history"]] == [
        "queued",
        "accepted",
        "sent",
        "delivered",
        "read",
    ]
    assert message["content"] is not None  # the kind's own fields
    sent = gateway.sent_to_meta[-1]
    check_sent(sent)
    assert sent["to"].lstrip("+") == CUSTOMER.lstrip("+")


async def test_list_reply_comes_back_as_list_reply(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    sent = await post(gateway, "/v1/messages/list", phone=CUSTOMER, **BODIES["list"])
    await gateway.wait_status(sent.json()["id"], "read")
    await gateway.reply(CUSTOMER, button_id="m")
    conversation = (
        await gateway.client.get(f"/v1/conversations/{CUSTOMER}", headers=gateway.auth)
    ).json()
    [pick] = [m for m in conversation["messages"] if m.get("button_id")]
    assert (pick["direction"], pick["kind"], pick["button_id"], pick["text"]) == (
        "inbound",
        "list_reply",
        "m",
        "Medium",
    )
    assert pick["content"]["interactive"]["list_reply"]["id"] == "m"


@pytest.mark.parametrize("kind", list(BODIES))
async def test_window_rule_applies_to_every_kind(gateway: Harness, kind: str) -> None:
    response = await post(gateway, f"/v1/messages/{kind}", phone=OTHER, **BODIES[kind])
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "outside_service_window"


async def test_field_errors_come_before_anything_is_queued(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    response = await post(
        gateway, "/v1/messages/list", phone=CUSTOMER, message="x", button="b" * 21, sections=[]
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "button_text_too_long"
    assert [e["code"] for e in error["errors"]] == ["button_text_too_long", "invalid_sections"]
    bad_token = await gateway.client.post(
        "/v1/messages/cta", json={"phone": CUSTOMER}, headers={"Authorization": "Bearer nope"}
    )
    assert bad_token.status_code == 401  # a bad token outranks bad fields
    listed = await gateway.client.get("/v1/messages", headers=gateway.auth)
    assert listed.json()["data"] == []


async def test_form_and_multipart_bodies(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    form = {
        "token": gateway.token,
        "phone": CUSTOMER,
        "message": "Pick",
        "button": "Sizes",
        "sections": json.dumps([{"rows": ROWS}]),
    }
    urlencoded = await gateway.client.post("/v1/messages/list", data=form)
    assert urlencoded.status_code == 202, urlencoded.text
    multipart = await gateway.client.post(
        "/v1/messages/location",
        files={
            k: (None, v)
            for k, v in {
                "token": gateway.token,
                "phone": CUSTOMER,
                "latitude": "1.5",
                "longitude": "2",
            }.items()
        },
    )
    assert multipart.status_code == 202, multipart.text
    message = await gateway.wait_status(multipart.json()["id"], "read")
    assert message["content"] == {"latitude": 1.5, "longitude": 2.0}


async def test_idempotency_metadata_and_reply_to(gateway: Harness) -> None:
    tap = await gateway.reply(CUSTOMER, text="where is it?")
    body = {
        **BODIES["cta"],
        "phone": CUSTOMER,
        "metadata": {"order": "4521"},
        "reply_to": tap["wamid"],
    }
    headers = {**gateway.auth, "Idempotency-Key": "cta-1"}
    first = await gateway.client.post("/v1/messages/cta", json=body, headers=headers)
    again = await gateway.client.post("/v1/messages/cta", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == again.json()["id"]
    other = await gateway.client.post(
        "/v1/messages/cta", json={**body, "button": "Other"}, headers=headers
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    message = await gateway.wait_status(first.json()["id"], "read")
    assert message["metadata"] == {"order": "4521"}
    sent = [p for p in gateway.sent_to_meta if p.get("type") == "interactive"]
    assert len(sent) == 1
    assert sent[0]["context"] == {"message_id": tap["wamid"]}


async def test_react_to_our_message_and_to_the_customers(gateway: Harness) -> None:
    inbound = await gateway.reply(CUSTOMER, text="thanks!")
    ours = await gateway.send(phone=CUSTOMER, message="Your order shipped")
    # Sent at once, before our message has its wamid: the lane keeps them in order.
    on_ours = await post(
        gateway, "/v1/messages/reaction", phone=CUSTOMER, message_id=ours.json()["id"], emoji="🚚"
    )
    assert on_ours.status_code == 202, on_ours.text
    assert on_ours.json()["type"] == "reaction"
    on_theirs = await post(
        gateway, "/v1/messages/reaction", phone=CUSTOMER, message_id=inbound["wamid"], emoji="❤️"
    )
    assert on_theirs.status_code == 202, on_theirs.text
    first = await gateway.wait_status(ours.json()["id"], "read")
    await gateway.wait_status(on_ours.json()["id"], "read")
    await gateway.wait_status(on_theirs.json()["id"], "read")
    reactions = [p for p in gateway.sent_to_meta if p.get("type") == "reaction"]
    assert [r["reaction"] for r in reactions] == [
        {"message_id": first["wamid"], "emoji": "🚚"},
        {"message_id": inbound["wamid"], "emoji": "❤️"},
    ]
    for payload in reactions:
        check_sent(payload)
        assert "context" not in payload
    conversation = (
        await gateway.client.get(f"/v1/conversations/{CUSTOMER}", headers=gateway.auth)
    ).json()
    by_key = {m.get("id") or m.get("wamid"): m for m in conversation["messages"]}
    assert by_key[ours.json()["id"]]["reactions"] == {"customer": None, "business": "🚚"}
    assert by_key[inbound["wamid"]]["reactions"] == {"customer": None, "business": "❤️"}
    assert by_key[on_ours.json()["id"]]["reacts_to"] == ours.json()["id"]


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"message_id": "msg_nope"}, 422, "message_not_found"),
        ({"message_id": "wamid.nope"}, 422, "message_not_found"),
        ({"phone": OTHER}, 422, "reaction_phone_mismatch"),
        ({"channel": "ch_other"}, 422, "reaction_channel_mismatch"),
        ({"emoji": "yes"}, 422, "invalid_emoji"),
    ],
)
async def test_reaction_refusals(
    gateway: Harness, changes: dict[str, Any], status: int, code: str
) -> None:
    inbound = await gateway.reply(CUSTOMER, text="hello")
    body = {"phone": CUSTOMER, "message_id": inbound["wamid"], "emoji": "👍", **changes}
    response = await post(gateway, "/v1/messages/reaction", **body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_another_accounts_message_cannot_be_reacted_to(gateway: Harness) -> None:
    inbound = await gateway.reply(CUSTOMER, text="hello")
    ours = await gateway.send(phone=CUSTOMER, message="hi")
    other = await add_tenant(gateway, "other")
    await open_window(gateway, other.channel, CUSTOMER)
    for message_id in (ours.json()["id"], inbound["wamid"]):
        response = await gateway.client.post(
            "/v1/messages/reaction",
            json={"phone": CUSTOMER, "message_id": message_id, "emoji": "👍"},
            headers=other.auth,
        )
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "message_not_found"
        assert (
            message_id not in response.json()["error"]["message"]
            or "no message" in (response.json()["error"]["message"])
        )


async def test_mark_read_with_typing_goes_through_the_outbox(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="first")
    latest = await gateway.reply(CUSTOMER, text="second")
    response = await gateway.client.post(
        f"/v1/conversations/{CUSTOMER}/read", json={"typing": True}, headers=gateway.auth
    )
    assert response.status_code == 202, response.text
    assert response.json()["type"] == "read"
    message = await gateway.wait_status(response.json()["id"], "accepted")
    assert message["wamid"] is None
    assert message["content"] == {"typing": True, "message_id": latest["wamid"]}
    receipt = gateway.sent_to_meta[-1]
    assert receipt == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": latest["wamid"],
        "typing_indicator": {"type": "text"},
    }
    check_sent(receipt)
    # The sandbox's customer sees blue ticks on that message.
    seen = (
        await gateway.client.get(
            f"/sandbox/customer/{CUSTOMER.lstrip('+')}/messages", headers=gateway.sandbox_auth
        )
    ).json()
    statuses = {m["wamid"]: m.get("status") for m in seen}
    assert statuses[latest["wamid"]] == "read"


async def test_mark_read_form_body_and_refusals(gateway: Harness) -> None:
    never = await gateway.client.post(
        f"/v1/conversations/{OTHER}/read", data={"token": gateway.token}
    )
    assert never.status_code == 409
    assert never.json()["error"]["code"] == "outside_service_window"
    bad_phone = await gateway.client.post(
        "/v1/conversations/14155552671/read", json={}, headers=gateway.auth
    )
    assert bad_phone.status_code == 422
    assert bad_phone.json()["error"]["code"] == "invalid_phone_format"
    await gateway.reply(CUSTOMER, text="hi")
    typing = await gateway.client.post(
        f"/v1/conversations/{CUSTOMER}/read", data={"token": gateway.token, "typing": "maybe"}
    )
    assert typing.status_code == 422
    assert typing.json()["error"]["field"] == "typing"
    ok = await gateway.client.post(
        f"/v1/conversations/{CUSTOMER}/read", data={"token": gateway.token, "typing": "false"}
    )
    assert ok.status_code == 202, ok.text


async def test_batch_takes_every_kind(gateway: Harness) -> None:
    inbound = await gateway.reply(CUSTOMER, text="hi")
    items = [{"kind": TYPES.get(k, k), "phone": CUSTOMER, **b} for k, b in BODIES.items()]
    items.append(
        {"kind": "reaction", "phone": CUSTOMER, "message_id": inbound["wamid"], "emoji": "👍"}
    )
    items.append({"kind": "reaction", "phone": CUSTOMER, "message_id": "msg_x", "emoji": "👍"})
    items.append({"kind": "list", "phone": CUSTOMER, "message": "x"})
    response = await gateway.client.post(
        "/v1/messages/batch", json={"messages": items}, headers=gateway.auth
    )
    assert response.status_code == 207, response.text
    results = response.json()["results"]
    assert [r["success"] for r in results] == [True] * 6 + [False, False]
    assert [r["type"] for r in results[:6]] == [
        "list",
        "cta",
        "location",
        "location_request",
        "contacts",
        "reaction",
    ]
    assert results[6]["error"]["code"] == "message_not_found"
    assert results[7]["error"]["code"] == "missing_field"
    for result in results[:6]:
        await gateway.wait_status(result["id"], "read")


INBOUND: list[tuple[str, dict[str, Any], str, str | None]] = [
    (
        "location",
        {"location": {"latitude": 12.5, "longitude": 77.25, "name": "Home"}},
        "location",
        "Home",
    ),
    ("pin", {"location": {"latitude": 12.5, "longitude": 77.25}}, "location", "12.5,77.25"),
    (
        "contacts",
        {
            "contacts": [
                {
                    "name": {"formatted_name": "Ravi K"},
                    "phones": [{"phone": "+919800000000", "type": "HOME"}],
                }
            ]
        },
        "contacts",
        "Ravi K",
    ),
    ("order", {"order": {"text": "Gift wrap please"}}, "order", "Gift wrap please"),
    (
        "system",
        {"system": {"body": "Number changed", "wa_id": "14155550000"}},
        "system",
        "Number changed",
    ),
    ("unsupported", {"unsupported": True}, "unsupported", None),
]


@pytest.mark.parametrize(("case", "fields", "kind", "text"), INBOUND, ids=[c[0] for c in INBOUND])
async def test_each_inbound_kind_is_kept_and_shown(
    gateway: Harness, case: str, fields: dict[str, Any], kind: str, text: str | None
) -> None:
    sent = await gateway.reply(CUSTOMER, **fields)
    conversation = (
        await gateway.client.get(f"/v1/conversations/{CUSTOMER}", headers=gateway.auth)
    ).json()
    [shown] = conversation["messages"]
    assert (shown["wamid"], shown["kind"], shown["text"]) == (sent["wamid"], kind, text)
    meta_type = "unsupported" if kind == "unsupported" else kind
    assert shown["content"]["type"] == meta_type
    assert "from" not in shown["content"] and "timestamp" not in shown["content"]
    assert conversation["window_open"] is True
    if meta_spec_available():
        async with gateway.engine.connect() as conn:
            raw = (await conn.execute(select(webhook_events.c.body))).scalars().all()
        for body in raw:
            validate_webhook(json.loads(body))


async def test_customer_reaction_attaches_to_our_message(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    ours = await gateway.send(phone=CUSTOMER, message="Order shipped")
    sent = await gateway.wait_status(ours.json()["id"], "read")
    reaction = await gateway.reply(CUSTOMER, reaction={"emoji": "👍"})
    conversation = (
        await gateway.client.get(f"/v1/conversations/{CUSTOMER}", headers=gateway.auth)
    ).json()
    by_key = {m.get("id") or m.get("wamid"): m for m in conversation["messages"]}
    assert by_key[ours.json()["id"]]["reactions"] == {"customer": "👍", "business": None}
    shown = by_key[reaction["wamid"]]
    assert (shown["kind"], shown["text"], shown["reacts_to"]) == (
        "reaction",
        "👍",
        ours.json()["id"],
    )
    assert shown["content"]["reaction"]["message_id"] == sent["wamid"]
    # Removing it (an empty emoji) clears it from the bubble.
    await gateway.reply(CUSTOMER, reaction={"emoji": "", "message_id": sent["wamid"]})
    conversation = (
        await gateway.client.get(f"/v1/conversations/{CUSTOMER}", headers=gateway.auth)
    ).json()
    by_key = {m.get("id") or m.get("wamid"): m for m in conversation["messages"]}
    assert by_key[ours.json()["id"]]["reactions"] == {"customer": None, "business": None}


async def test_a_reaction_to_a_message_that_never_went_out_fails_clearly(
    gateway: Harness,
) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    fault = {"code": 131026, "mode": "response", "count": 1, "phone": CUSTOMER}
    added = await gateway.client.post("/sandbox/faults", json=fault, headers=gateway.sandbox_auth)
    assert added.status_code in (200, 201), added.text
    ours = await gateway.send(phone=CUSTOMER, message="This one is refused by Meta")
    reaction = await post(
        gateway, "/v1/messages/reaction", phone=CUSTOMER, message_id=ours.json()["id"], emoji="👍"
    )
    assert reaction.status_code == 202, reaction.text
    failed = await gateway.wait_status(ours.json()["id"], "failed")
    assert failed["wamid"] is None
    refused = await gateway.wait_status(reaction.json()["id"], "failed")
    assert refused["error"]["code"] == "reaction_target_not_sent"
    assert ours.json()["id"] in refused["error"]["details"]
    assert not [p for p in gateway.sent_to_meta if p.get("type") == "reaction"]


async def test_the_dashboard_pages_show_every_kind_without_failing(gateway: Harness) -> None:
    """The dashboard renders the new kinds (their look is the dashboard's own work); here:
    every page that lists them still answers."""
    from tests.integration.test_dashboard_pages import ME, signed_in
    from tests.support.dashboard import add_user

    inbound = await gateway.reply(CUSTOMER, text="hi")
    ids = []
    for kind, body in BODIES.items():
        sent = await post(gateway, f"/v1/messages/{kind}", phone=CUSTOMER, **body)
        ids.append(sent.json()["id"])
    reacted = await post(
        gateway, "/v1/messages/reaction", phone=CUSTOMER, message_id=inbound["wamid"], emoji="👍"
    )
    ids.append(reacted.json()["id"])
    read = await gateway.client.post(
        f"/v1/conversations/{CUSTOMER}/read", json={}, headers=gateway.auth
    )
    ids.append(read.json()["id"])
    for message_id in ids[:-1]:
        await gateway.wait_status(message_id, "read")
    for _, fields, _, _ in INBOUND:
        await gateway.reply(CUSTOMER, **fields)
    await gateway.reply(CUSTOMER, reaction={"emoji": "❤️"})
    await add_user(gateway.engine, account="sandbox", email=ME)
    async with signed_in(gateway) as (browser, _):
        pages = [
            f"/conversations/{CUSTOMER[1:]}",
            "/messages",
            f"/sandbox-phone/{CUSTOMER[1:]}",
            *(f"/messages/{message_id}" for message_id in ids),
        ]
        for page in pages:
            answer = await browser.get(page)
            assert answer.status_code == 200, (page, answer.text[-2000:])


async def test_a_repeated_read_receipt_is_the_same_request(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="one")
    headers = {**gateway.auth, "Idempotency-Key": "read-1"}
    path = f"/v1/conversations/{CUSTOMER}/read"
    first = await gateway.client.post(path, json={"typing": True}, headers=headers)
    await gateway.reply(CUSTOMER, text="two")  # the latest message is another one now
    again = await gateway.client.post(path, json={"typing": True}, headers=headers)
    assert first.status_code == again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await gateway.client.post(path, json={"typing": False}, headers=headers)
    assert other.status_code == 409


async def test_mark_read_finds_the_latest_message_on_any_of_the_accounts_numbers(
    gateway: Harness,
) -> None:
    await gateway.reply(CUSTOMER, text="to the sandbox number")
    sandbox = await gateway.sandbox_channel()
    second = await add_channel(gateway, account_id=await gateway.account_id())
    await open_window(gateway, second, CUSTOMER)  # a later message, to the second number
    path = f"/v1/conversations/{CUSTOMER}/read"
    anywhere = await gateway.client.post(path, json={}, headers=gateway.auth)
    assert anywhere.status_code == 202, anywhere.text
    message = await gateway.message(anywhere.json()["id"])
    assert message["channel_id"] == second.id
    named = await gateway.client.post(path, json={"channel": sandbox.id}, headers=gateway.auth)
    assert named.status_code == 202, named.text
    assert (await gateway.message(named.json()["id"]))["channel_id"] == sandbox.id


async def test_inbound_callbacks_name_each_kind_as_the_conversation_does(
    gateway: Harness,
) -> None:
    from tests.integration.test_callbacks import eventually, listening

    async with listening(gateway) as receiver:
        await gateway.reply(CUSTOMER, text="hi")
        listed = await post(gateway, "/v1/messages/list", phone=CUSTOMER, **BODIES["list"])
        await gateway.wait_status(listed.json()["id"], "accepted")
        await gateway.reply(CUSTOMER, button_id="s")
        await gateway.reply(CUSTOMER, location={"latitude": 1.5, "longitude": 2.5, "name": "Gate"})
        await gateway.reply(CUSTOMER, reaction={"emoji": "🎉"})
        await gateway.reply(CUSTOMER, unsupported=True)
        await eventually(lambda: len(receiver.events("message.inbound")) == 5)
        events = [e["data"] for e in receiver.events("message.inbound")]
    conversation = (
        await gateway.client.get(f"/v1/conversations/{CUSTOMER}", headers=gateway.auth)
    ).json()
    shown = {m["wamid"]: m.get("kind") for m in conversation["messages"]}
    assert [e["kind"] for e in events] == [
        "text", "list_reply", "location", "reaction", "unsupported",
    ]  # fmt: skip
    for event in events:
        assert shown[event["wamid"]] == event["kind"]
    pick, place, reaction = events[1], events[2], events[3]
    listed_id = listed.json()["id"]
    assert (pick["button_id"], pick["text"], pick["reply_to"]) == ("s", "Small", listed_id)
    assert place["content"]["location"]["latitude"] == 1.5 and place["text"] == "Gate"
    assert (reaction["text"], reaction["reacts_to"]) == ("🎉", listed_id)
