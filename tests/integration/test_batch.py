"""`POST /v1/messages/batch` (SPEC §9, issue 13 point 3): up to 1,000 sends in one request, each
judged, stored and answered on its own, in order."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import jsonschema
from sqlalchemy import func, select, update

from tests.support.harness import Harness
from wagate.store.db import write_tx
from wagate.store.tables import accounts, messages

CUSTOMER = "+14155552671"
OTHER = "+919876543210"  # never wrote in: window closed
ORDER_PARAMS = {
    "header": ["#4521"],
    "body": {"first_name": "Asha", "order_number": "4521"},
    "buttons": [{"index": 0, "payload": "track-4521"}, {"index": 1, "text": "4521"}],
}


async def _post(gateway: Harness, body: Any, **kwargs: Any) -> httpx.Response:
    headers = gateway.auth | kwargs.pop("headers", {})
    return await gateway.client.post("/v1/messages/batch", json=body, headers=headers, **kwargs)


async def _stored(gateway: Harness) -> int:
    async with gateway.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(messages))).scalar_one())


async def _ready(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    synced = await gateway.client.post("/v1/templates/sync", headers=gateway.auth)
    assert synced.status_code == 200, synced.text


async def test_each_item_is_judged_and_answered_on_its_own_in_order(gateway: Harness) -> None:
    await _ready(gateway)
    items: list[Any] = [
        {"phone": CUSTOMER, "message": "plain text"},
        {"kind": "text", "phone": CUSTOMER, "message": "Pick one", "header": "Slots",
         "buttons": [{"id": "am", "title": "Morning"}]},
        {"phone": "+1 (415) 555-2671", "message": "bad phone"},
        {"phone": OTHER, "message": "window closed"},
        {"kind": "template", "phone": OTHER, "template": "order_confirmation",
         "language": "en_US", "params": ORDER_PARAMS},
        {"kind": "template", "phone": OTHER, "template": "order_confirmation",
         "language": "en_US", "params": {"body": {"first_name": "Asha"}}},
        {"kind": "media", "phone": CUSTOMER},
        {"kind": "fax", "phone": CUSTOMER},
        "not an object",
        {"phone": CUSTOMER, "message": "no such number", "channel": "nope"},
    ]  # fmt: skip
    response = await _post(gateway, {"messages": items})
    assert response.status_code == 207, response.text
    body = response.json()
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    assert [r["success"] for r in results] == [True, True, False, False, True, False] + [False] * 4
    assert (body["accepted"], body["refused"]) == (3, 7)
    assert results[0]["type"] == "text" and results[1]["type"] == "interactive"
    assert results[4]["type"] == "template" and results[4]["window_expires_at"] is None
    assert not any(r.get("replayed") for r in results if r["success"])
    codes = [(r["status_code"], r["error"]["code"]) for r in results if not r["success"]]
    assert codes == [
        (422, "invalid_phone_format"),
        (409, "outside_service_window"),
        (422, "template_params_mismatch"),
        (422, "missing_field"),
        (422, "invalid_field"),
        (400, "invalid_body"),
        (422, "unknown_channel"),
    ]
    assert "+14155552671" in results[2]["error"]["message"]  # the corrected form, as alone
    assert results[6]["error"]["field"] == "media_type"  # judged as POST /v1/messages/media
    assert results[7]["error"]["field"] == "kind"
    assert await _stored(gateway) == 3
    # Accepted items are ordinary messages: queued, then delivered.
    for result in results[:2]:
        await gateway.wait_status(result["id"], "read")


async def test_whole_request_problems_answer_the_whole_request(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    one = [{"phone": CUSTOMER, "message": "hi"}]

    async def error(response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        data: dict[str, Any] = response.json()
        assert data["success"] is False
        return dict(data["error"])

    no_token = await gateway.client.post("/v1/messages/batch", json={"messages": one})
    assert (await error(no_token, 401))["code"] == "missing_token"
    bad = {"Authorization": "Bearer wg_unknown"}
    for items in (one, [{"phone": "bad"}]):  # a bad token outranks bad items
        refused = await gateway.client.post(
            "/v1/messages/batch", json={"messages": items}, headers=bad
        )
        assert (await error(refused, 401))["code"] == "invalid_token"
    in_body = await gateway.client.post(
        "/v1/messages/batch", json={"token": gateway.token, "messages": one}
    )
    assert in_body.status_code == 207
    raw = await gateway.client.post(
        "/v1/messages/batch",
        content=b"{",
        headers=gateway.auth | {"Content-Type": "application/json"},
    )
    assert (await error(raw, 400))["code"] == "invalid_body"
    assert (await error(await _post(gateway, one), 400))["code"] == "invalid_body"
    form = await gateway.client.post(
        "/v1/messages/batch", data={"messages": "[]"}, headers=gateway.auth
    )
    assert (await error(form, 415))["code"] == "unsupported_media_type"
    for body, code in (
        ({}, "missing_field"),
        ({"messages": {"phone": CUSTOMER}}, "invalid_field"),
        ({"messages": []}, "empty_batch"),
        ({"messages": one * 1001}, "too_many_messages"),
    ):
        problem = await error(await _post(gateway, body), 422)
        assert (problem["code"], problem["field"]) == (code, "messages")
    typed = await error(await _post(gateway, {"token": 5, "messages": one}), 422)
    assert (typed["code"], typed["field"]) == ("invalid_field", "token")
    options = await gateway.client.options("/v1/messages/batch", headers=gateway.auth)
    assert (await error(options, 405))["code"] == "method_not_allowed"
    assert options.headers["Allow"] == "POST"
    keyed = await _post(gateway, {"messages": one}, headers={"Idempotency-Key": "k"})
    assert (await error(keyed, 422))["field"] == "Idempotency-Key"
    huge = json.dumps({"messages": [{"phone": CUSTOMER, "message": "x" * 9000}] * 1000})
    too_big = await gateway.client.post(
        "/v1/messages/batch",
        content=huge,
        headers=gateway.auth | {"Content-Type": "application/json"},
    )
    assert "8 MiB" in (await error(too_big, 413))["message"]
    assert await _stored(gateway) == 1  # only the batch sent with the token in its body


async def test_idempotency_is_per_item(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    items = [
        {"phone": CUSTOMER, "message": f"order {n} shipped", "idempotency_key": f"ship-{n}"}
        for n in range(3)
    ]
    twice = [*items, items[0]]  # the same key twice in one batch: one message
    first = (await _post(gateway, {"messages": twice})).json()["results"]
    assert [r["replayed"] for r in first] == [False, False, False, True]
    assert first[3]["id"] == first[0]["id"]
    again = (await _post(gateway, {"messages": items})).json()
    assert again["accepted"] == 3
    assert [r["id"] for r in again["results"]] == [r["id"] for r in first[:3]]
    assert all(r["replayed"] for r in again["results"])
    # A single send with a batch item's key gets that item's answer, and the reverse.
    single = await gateway.client.post("/v1/messages", json=items[1], headers=gateway.auth)
    assert single.json()["id"] == first[1]["id"]
    assert single.headers["idempotent-replayed"] == "true"
    alone = await gateway.send(phone=CUSTOMER, message="alone", idempotency_key="solo")
    back = (await _post(gateway, {"messages": [{"phone": CUSTOMER, "message": "alone",
                                                 "idempotency_key": "solo"}]})).json()  # fmt: skip
    assert back["results"][0]["id"] == alone.json()["id"]
    changed = {"phone": CUSTOMER, "message": "another text", "idempotency_key": "ship-0"}
    conflict = (await _post(gateway, {"messages": [changed]})).json()["results"][0]
    assert (conflict["status_code"], conflict["error"]["code"]) == (409, "idempotency_conflict")
    assert await _stored(gateway) == 4


async def test_each_item_counts_against_the_api_rate(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    async with write_tx(gateway.engine) as conn:
        await conn.execute(update(accounts).values(api_rate=2))  # bursts of 4
    items = [{"phone": CUSTOMER, "message": f"m{n}"} for n in range(5)] + [{"phone": "x"}]
    response = await _post(gateway, {"messages": items})
    assert response.status_code == 207
    codes = [r["error"]["code"] if not r["success"] else "ok" for r in response.json()["results"]]
    assert codes == ["ok"] * 4 + ["rate_limited", "rate_limited"]
    assert int(response.headers["Retry-After"]) >= 1
    assert await _stored(gateway) == 4


async def test_storage_down_refuses_the_whole_batch(gateway: Harness) -> None:
    from sqlalchemy import text

    await gateway.reply(CUSTOMER, text="hi")
    await gateway.dispatcher.stop()
    async with write_tx(gateway.engine) as conn:
        await conn.execute(text("ALTER TABLE outbox RENAME TO outbox_gone"))
    items = [{"phone": CUSTOMER, "message": "a"}, {"phone": "bad"}]
    response = await _post(gateway, {"messages": items})
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    async with write_tx(gateway.engine) as conn:
        await conn.execute(text("ALTER TABLE outbox_gone RENAME TO outbox"))
    assert await _stored(gateway) == 0


async def test_openapi_describes_the_batch_endpoint_as_it_answers(gateway: Harness) -> None:
    await _ready(gateway)
    spec = (await gateway.client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/messages/batch"]["post"]

    def validate(instance: Any, ref: str) -> None:
        # The whole description as the root, so that its "#/components/…" references resolve.
        jsonschema.Draft202012Validator(spec | {"$ref": ref}).validate(instance)

    body = {
        "messages": [
            {"phone": CUSTOMER, "message": "hi", "idempotency_key": "a"},
            {"kind": "template", "phone": OTHER, "template": "order_confirmation",
             "language": "en_US", "params": ORDER_PARAMS},
            {"phone": OTHER, "message": "closed"},
        ]
    }  # fmt: skip
    validate(body, operation["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    answer = await _post(gateway, body)
    ok = operation["responses"][str(answer.status_code)]["content"]["application/json"]
    validate(answer.json(), ok["schema"]["$ref"])
    for status, response in (
        (422, await _post(gateway, {"messages": []})),
        (401, await gateway.client.post("/v1/messages/batch", json=body)),
        (415, await gateway.client.post("/v1/messages/batch", data={"a": "b"})),
    ):
        assert response.status_code == status
        documented = operation["responses"][str(status)]["content"]["application/json"]
        validate(response.json(), documented["schema"]["$ref"])


async def test_a_thousand_items_in_one_request(gateway: Harness) -> None:
    phones = [f"+1415555{2000 + n:04d}" for n in range(20)]
    await asyncio.gather(*(gateway.reply(p, text="hi") for p in phones))
    items = [{"phone": phones[n % 20], "message": f"bulk {n}"} for n in range(1000)]
    response = await _post(gateway, {"messages": items})
    assert response.status_code == 207
    assert response.json()["accepted"] == 1000
    assert len({r["id"] for r in response.json()["results"]}) == 1000
    assert await _stored(gateway) == 1000
