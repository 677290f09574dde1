"""Templates synced from the Graph API (the sandbox's) and listed, through HTTP: every page
fetched, a channel's set replaced, a failed sync changing nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
from sqlalchemy import select, update

from tests.support.harness import Harness
from wagate.cloud.templates import fetch_templates
from wagate.domain.templates import Template
from wagate.store import accounts as account_store
from wagate.store import templates as template_store
from wagate.store.db import write_tx
from wagate.store.tables import channels, templates

ALL = [
    ("appointment_reminder", "en_US", "APPROVED", "UTILITY"),
    ("appointment_reminder", "pt_BR", "APPROVED", "UTILITY"),
    ("hello_world", "en_US", "APPROVED", "UTILITY"),
    ("order_confirmation", "en_US", "APPROVED", "UTILITY"),
    ("summer_sale", "en_US", "APPROVED", "MARKETING"),
    ("winter_promo", "en_US", "REJECTED", "MARKETING"),
]

# The sandbox lists them in this order, as Meta lists in its own.
LISTED_ORDER = [
    ("hello_world", "en_US"),
    ("order_confirmation", "en_US"),
    ("appointment_reminder", "en_US"),
    ("appointment_reminder", "pt_BR"),
    ("summer_sale", "en_US"),
    ("winter_promo", "en_US"),
]


async def sync(gateway: Harness) -> httpx.Response:
    return await gateway.client.post("/v1/templates/sync", headers=gateway.auth)


async def listed(gateway: Harness, **query: str) -> list[dict[str, Any]]:
    response = await gateway.client.get("/v1/templates", params=query, headers=gateway.auth)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_sync_stores_every_template_and_the_list_shows_them(gateway: Harness) -> None:
    assert await listed(gateway) == []
    response = await sync(gateway)
    assert response.status_code == 200, response.text
    body = response.json()
    [channel] = body["channels"]
    assert channel["templates"] == 6 and channel["error"] is None
    assert channel["waba_id"] == gateway.identity.waba_id
    assert [(t["name"], t["language"], t["status"], t["category"]) for t in body["data"]] == ALL

    data = await listed(gateway)
    assert [(t["name"], t["language"], t["status"], t["category"]) for t in data] == ALL
    order = next(t for t in data if t["name"] == "order_confirmation")
    assert order["parameter_format"] == "NAMED"
    assert order["meta_id"] == "900000000000002"
    assert [c["type"] for c in order["components"]] == ["HEADER", "BODY", "FOOTER", "BUTTONS"]
    assert order["components"][1]["text"].startswith("Hi {{first_name}}, your order")
    assert order["example_params"] == {
        "header": ["#4521"],
        "body": {"first_name": "Asha", "order_number": "4521"},
        "buttons": [{"index": 0, "payload": "track-order"}, {"index": 1, "text": "4521"}],
    }
    assert order["id"].startswith("tpl_") and order["synced_at"]

    assert [t["name"] for t in await listed(gateway, status="rejected")] == ["winter_promo"]
    assert [t["name"] for t in await listed(gateway, language="pt_br")] == ["appointment_reminder"]
    assert len(await listed(gateway, name="appointment_reminder")) == 2
    assert await listed(gateway, name="nothing") == []


async def test_every_page_is_fetched(gateway: Harness) -> None:
    """Meta's cursor paging, followed to the end however small the pages."""
    async with gateway.engine.connect() as conn:
        [channel] = await account_store.list_channels(conn)
    http: httpx.AsyncClient = gateway.app.state.cloud_http
    pages: list[str] = []

    async def count(request: httpx.Request) -> None:
        if request.url.path.endswith("/message_templates"):
            pages.append(str(request.url))

    http.event_hooks["request"].append(count)
    try:
        for size in (1, 2, 4, 100):
            pages.clear()
            found = await fetch_templates(
                http,
                graph_url=channel.graph_url,
                version="v23.0",
                waba_id=channel.waba_id,
                access_token=channel.access_token,
                page_size=size,
            )
            assert [(t.name, t.language) for t in found] == LISTED_ORDER
            assert len(pages) == -(-6 // size)  # whole pages, rounded up
    finally:
        http.event_hooks["request"].remove(count)


async def test_a_sync_replaces_the_set_and_keeps_ids(gateway: Harness) -> None:
    async with gateway.engine.connect() as conn:
        [channel] = await account_store.list_channels(conn)
    gone = Template("spring_promo", "en_US", "APPROVED", "MARKETING", "POSITIONAL", ())
    async with write_tx(gateway.engine) as conn:
        await template_store.replace_channel_templates(
            conn, channel=channel, synced=[gone], now=gateway.clock.now()
        )
    assert [t["name"] for t in await listed(gateway)] == ["spring_promo"]
    assert (await sync(gateway)).status_code == 200
    first = {(t["name"], t["language"]): t["id"] for t in await listed(gateway)}
    assert ("spring_promo", "en_US") not in first  # gone upstream, gone here
    assert len(first) == 6
    assert (await sync(gateway)).status_code == 200
    again = {(t["name"], t["language"]): t["id"] for t in await listed(gateway)}
    assert again == first


async def test_syncs_at_the_same_time_both_succeed(gateway: Harness) -> None:
    answers = await asyncio.gather(*(sync(gateway) for _ in range(4)))
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert len(await listed(gateway)) == 6


async def test_a_failed_sync_changes_nothing_and_says_why(gateway: Harness) -> None:
    assert (await sync(gateway)).status_code == 200
    before = await listed(gateway)
    async with write_tx(gateway.engine) as conn:
        await conn.execute(update(channels).values(access_token="expired-token"))
        await conn.execute(update(templates).values(status="PAUSED"))
    paused = await listed(gateway)
    response = await sync(gateway)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_error"
    assert "Meta error 190" in error["message"] and "Nothing was changed" in error["message"]
    assert "expired-token" not in response.text
    assert await listed(gateway) == paused != before


async def test_each_account_sees_only_its_templates(gateway: Harness) -> None:
    assert (await sync(gateway)).status_code == 200
    async with write_tx(gateway.engine) as conn:
        other = await account_store.create_account(conn, name="other", now=gateway.clock.now())
        token, _ = await account_store.create_token(
            conn, account_id=other["id"], name="t", now=gateway.clock.now()
        )
    theirs = {"Authorization": f"Bearer {token}"}
    assert (await gateway.client.get("/v1/templates", headers=theirs)).json() == {"data": []}
    response = await gateway.client.post("/v1/templates/sync", headers=theirs)
    assert response.json() == {"success": True, "channels": [], "data": []}
    async with gateway.engine.connect() as conn:
        rows = (await conn.execute(select(templates.c.account_id))).scalars().all()
    assert len(rows) == 6 and other["id"] not in rows


async def test_tokens_are_required(gateway: Harness) -> None:
    for method, path in (("GET", "/v1/templates"), ("POST", "/v1/templates/sync")):
        response = await gateway.client.request(method, path)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "missing_token"
        bad = await gateway.client.request(method, path, headers={"Authorization": "Bearer x"})
        assert bad.json()["error"]["code"] == "invalid_token"


async def test_openapi_documents_the_template_endpoints(gateway: Harness) -> None:
    spec = (await gateway.client.get("/openapi.json")).json()
    send = spec["paths"]["/v1/messages/template"]["post"]
    for status in ("400", "401", "409", "413", "415", "422", "429", "503"):
        ref = send["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse")
    assert set(send["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }
    assert any(p["name"] == "Idempotency-Key" for p in send["parameters"])
    body = spec["components"]["schemas"]["SendTemplateBody"]
    assert {"phone", "template", "language", "params"} <= set(body["properties"])
    synced = spec["paths"]["/v1/templates/sync"]["post"]["responses"]
    assert synced["502"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "200" in spec["paths"]["/v1/templates"]["get"]["responses"]
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs <= set(spec["components"]["schemas"])
