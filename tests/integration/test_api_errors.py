"""Every bad request gets the documented error shape and changes nothing; nothing answers 500."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.harness import Harness
from wagate.store import accounts as account_store
from wagate.store.db import write_tx

CUSTOMER = "+14155552671"


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["errors"], list)
    error: dict[str, Any] = body["error"]
    return error


async def _count_messages(gateway: Harness) -> int:
    listed = (await gateway.client.get("/v1/messages", headers=gateway.auth)).json()
    return len(listed["data"])


RAW_CASES = [
    ("not json", b"{nope", "application/json", 400, "invalid_body"),
    ("json array", b"[1, 2]", "application/json", 400, "invalid_body"),
    ("json string", b'"hello"', "application/json", 400, "invalid_body"),
    ("empty body", b"", "application/json", 400, "invalid_body"),
    ("bad utf-8", b'{"phone": "\xff"}', "application/json", 400, "invalid_body"),
    ("xml", b"<message/>", "application/xml", 415, "unsupported_media_type"),
    ("no content type", b"{}", "", 415, "unsupported_media_type"),
    ("text/plain", b"hello", "text/plain", 415, "unsupported_media_type"),
    (
        "too large",
        b'{"message": "' + b"x" * 70_000 + b'"}',
        "application/json",
        413,
        "payload_too_large",
    ),
]


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [c[1:] for c in RAW_CASES],
    ids=[c[0] for c in RAW_CASES],
)
async def test_unreadable_bodies(
    gateway: Harness, raw: bytes, content_type: str, status: int, code: str
) -> None:
    await gateway.reply(CUSTOMER, text="hello")
    headers = dict(gateway.auth)
    if content_type:
        headers["Content-Type"] = content_type
    response = await gateway.client.post("/v1/messages", content=raw, headers=headers)
    assert_error(response, status, code)
    assert await _count_messages(gateway) == 0


async def test_token_rules(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hello")
    body = {"phone": CUSTOMER, "message": "hi"}
    assert_error(await gateway.client.post("/v1/messages", json=body), 401, "missing_token")
    assert_error(
        await gateway.client.post("/v1/messages", json=body, headers={"Authorization": "Basic x"}),
        401,
        "missing_token",
    )
    unknown = await gateway.client.post(
        "/v1/messages", json=body, headers={"Authorization": "Bearer wg_nope"}
    )
    assert_error(unknown, 401, "invalid_token")
    # A revoked token gets exactly the same answer as an unknown one.
    async with write_tx(gateway.engine) as conn:
        account = await account_store.require_account(conn, name="sandbox")
        token, row = await account_store.create_token(
            conn, account_id=account["id"], name="short-lived", now=gateway.clock.now()
        )
    ok = await gateway.client.post("/v1/messages", json={**body, "token": token})
    assert ok.status_code == 202
    async with write_tx(gateway.engine) as conn:
        await account_store.revoke_token(
            conn, token_id=row["id"], account_id=None, now=gateway.clock.now()
        )
    revoked = await gateway.client.post("/v1/messages", json={**body, "token": token})
    assert revoked.status_code == unknown.status_code
    assert revoked.json() == unknown.json()
    assert revoked.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")
    assert await _count_messages(gateway) == 1


FIELD_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("missing phone", {"message": "hi"}, "missing_field", "phone"),
    ("missing message", {"phone": CUSTOMER}, "missing_field", "message"),
    (
        "phone with spaces",
        {"phone": "+1 415 555 2671", "message": "hi"},
        "invalid_phone_format",
        "phone",
    ),
    (
        "phone without plus",
        {"phone": "14155552671", "message": "hi"},
        "invalid_phone_format",
        "phone",
    ),
    ("invalid number", {"phone": "+1555", "message": "hi"}, "invalid_phone_number", "phone"),
    ("blank message", {"phone": CUSTOMER, "message": "   "}, "empty_message", "message"),
    ("long text", {"phone": CUSTOMER, "message": "x" * 4097}, "message_too_long", "message"),
    (
        "long interactive",
        {"phone": CUSTOMER, "message": "x" * 1025, "buttons": [{"id": "a", "title": "A"}]},
        "message_too_long",
        "message",
    ),
    (
        "header without buttons",
        {"phone": CUSTOMER, "message": "hi", "header": "H"},
        "buttons_required",
        "buttons",
    ),
    (
        "four buttons",
        {
            "phone": CUSTOMER,
            "message": "hi",
            "buttons": [{"id": str(i), "title": str(i)} for i in range(4)],
        },
        "too_many_buttons",
        "buttons",
    ),
    (
        "long title",
        {
            "phone": CUSTOMER,
            "message": "hi",
            "buttons": [{"id": "a", "title": "A"}, {"id": "b", "title": "x" * 23}],
        },
        "button_title_too_long",
        "buttons[1].title",
    ),
    (
        "duplicate ids",
        {
            "phone": CUSTOMER,
            "message": "hi",
            "buttons": [{"id": "a", "title": "A"}, {"id": "a", "title": "B"}],
        },
        "duplicate_button_id",
        "buttons[1].id",
    ),
]


@pytest.mark.parametrize(
    ("body", "code", "field"), [c[1:] for c in FIELD_CASES], ids=[c[0] for c in FIELD_CASES]
)
async def test_field_rules_through_http(
    gateway: Harness, body: dict[str, Any], code: str, field: str
) -> None:
    await gateway.reply(CUSTOMER, text="hello")
    error = assert_error(await gateway.send(**body), 422, code)
    assert error["field"] == field
    assert error["errors"][0]["code"] == code
    assert await _count_messages(gateway) == 0


async def test_every_problem_is_listed(gateway: Harness) -> None:
    response = await gateway.send(
        phone="+1 (415) 555-2671",
        message="",
        header="h" * 61,
        buttons=[{"id": "a", "title": "x" * 21}, {"id": "a", "title": "y"}],
    )
    error = assert_error(response, 422, "invalid_phone_format")
    codes = [e["code"] for e in error["errors"]]
    assert codes[0] == "invalid_phone_format"
    assert {
        "empty_message",
        "header_too_long",
        "button_title_too_long",
        "duplicate_button_id",
    } <= set(codes)
    assert "+14155552671" in error["message"]


async def test_not_found_and_reading_errors(gateway: Harness) -> None:
    assert_error(
        await gateway.client.get("/v1/messages/msg_nope", headers=gateway.auth), 404, "not_found"
    )
    assert_error(await gateway.client.get("/v1/nowhere", headers=gateway.auth), 404, "not_found")
    assert_error(
        await gateway.client.get("/v1/messages?limit=0", headers=gateway.auth), 422, "invalid_field"
    )
    assert_error(
        await gateway.client.get("/v1/messages?status=lost", headers=gateway.auth),
        422,
        "invalid_field",
    )
    assert_error(
        await gateway.client.get("/v1/messages?phone=123", headers=gateway.auth),
        422,
        "invalid_phone_format",
    )
    assert_error(
        await gateway.client.get("/v1/conversations/abc", headers=gateway.auth),
        422,
        "invalid_phone_format",
    )
    assert_error(
        await gateway.client.delete("/v1/messages", headers=gateway.auth), 405, "method_not_allowed"
    )
    assert_error(await gateway.client.get("/v1/messages"), 401, "missing_token")


async def test_openapi_documents_our_error_shape(gateway: Harness) -> None:
    spec = (await gateway.client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in json.dumps(spec)
    send = spec["paths"]["/v1/messages"]["post"]
    for status in ("400", "401", "409", "413", "415", "422"):
        ref = send["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse")
    assert "application/x-www-form-urlencoded" in send["requestBody"]["content"]
    # Every reference resolves, so generated clients and schema-driven fuzzers can use it.
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs and refs <= set(spec["components"]["schemas"])
    assert "SendMessageBody" in refs
    assert (await gateway.client.get("/docs")).status_code == 200


async def test_accounts_cannot_see_each_other(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hello")
    mine = (await gateway.send(phone=CUSTOMER, message="mine")).json()["id"]
    async with write_tx(gateway.engine) as conn:
        other = await account_store.create_account(conn, name="other", now=gateway.clock.now())
        token, _ = await account_store.create_token(
            conn, account_id=other["id"], name="t", now=gateway.clock.now()
        )
    theirs = {"Authorization": f"Bearer {token}"}
    assert_error(await gateway.client.get(f"/v1/messages/{mine}", headers=theirs), 404, "not_found")
    assert (await gateway.client.get("/v1/messages", headers=theirs)).json()["data"] == []
    # Without a channel of its own, the other account cannot send at all.
    refused = await gateway.client.post(
        "/v1/messages", json={"phone": CUSTOMER, "message": "x"}, headers=theirs
    )
    assert_error(refused, 422, "unknown_channel")


async def test_listing_filters_and_cursor_pagination(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hello")
    await gateway.reply("+919876543210", text="namaste")
    ids = []
    for i in range(5):
        ids.append((await gateway.send(phone=CUSTOMER, message=f"m{i}")).json()["id"])
    other = (await gateway.send(phone="+919876543210", message="other")).json()["id"]
    seen: list[str] = []
    cursor = None
    while True:
        url = "/v1/messages?limit=2&phone=%2B14155552671" + (f"&cursor={cursor}" if cursor else "")
        page = (await gateway.client.get(url, headers=gateway.auth)).json()
        seen += [m["id"] for m in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    everything = (await gateway.client.get("/v1/messages?limit=200", headers=gateway.auth)).json()
    assert everything["data"][0]["id"] == other
    await gateway.wait_status(other, "read")
    read = (await gateway.client.get("/v1/messages?status=read", headers=gateway.auth)).json()
    assert other in [m["id"] for m in read["data"]]


async def test_an_account_over_its_api_rate_gets_429_with_retry_after(gateway: Harness) -> None:
    async with write_tx(gateway.engine) as conn:
        slow = await account_store.create_account(
            conn, name="slow", now=gateway.clock.now(), api_rate=1
        )
        token, _ = await account_store.create_token(
            conn, account_id=slow["id"], name="t", now=gateway.clock.now()
        )
    headers = {"Authorization": f"Bearer {token}"}
    answers = [await gateway.client.get("/v1/messages", headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [200, 200]  # a burst of twice the rate
    error = assert_error(answers[2], 429, "rate_limited")
    assert "1 requests a second" in error["message"]
    assert int(answers[2].headers["Retry-After"]) >= 1
    # Other accounts are not slowed by it.
    assert (await gateway.client.get("/v1/messages", headers=gateway.auth)).status_code == 200


async def test_storage_failure_is_a_503_and_nothing_is_accepted(gateway: Harness) -> None:
    from sqlalchemy import text

    await gateway.reply(CUSTOMER, text="hello")
    await gateway.dispatcher.stop()
    async with write_tx(gateway.engine) as conn:
        await conn.execute(text("ALTER TABLE outbox RENAME TO outbox_gone"))
    response = await gateway.send(phone=CUSTOMER, message="hi")
    error = assert_error(response, 503, "service_unavailable")
    assert "nothing was accepted" in error["message"].lower()
    assert response.headers["Retry-After"] == "1"
    async with write_tx(gateway.engine) as conn:
        await conn.execute(text("ALTER TABLE outbox_gone RENAME TO outbox"))
    assert await _count_messages(gateway) == 0  # the message row was rolled back with it


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/messages/msg_%00", "path"),
        ("/v1/messages?cursor=%00", "cursor"),
        ("/v1/messages?phone=%2B1415%00", "phone"),
        ("/v1/conversations/%2B14155552671%00", "path"),
        ("/v1/templates?name=order%00", "name"),
        ("/v1/templates?channel=%00", "channel"),
        ("/v1/callbacks/evt_%00", "path"),
        ("/v1/callbacks?status=failed&cursor=%00", "cursor"),
    ],
)
async def test_a_nul_character_in_a_path_or_query_is_bad_input(
    gateway: Harness, path: str, field: str
) -> None:
    """PostgreSQL refuses NUL in any string: it must be a 422 naming the parameter, not a
    storage error asking the client to retry."""
    error = assert_error(await gateway.client.get(path, headers=gateway.auth), 422, "invalid_field")
    assert error["field"] == field
    assert "NUL" in error["message"]
    # A literal "%00" in a value is not a NUL character.
    fine = await gateway.client.get("/v1/templates?name=100%2500", headers=gateway.auth)
    assert fine.status_code == 200
