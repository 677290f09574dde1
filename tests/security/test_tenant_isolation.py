"""Tenant isolation (SPEC §10): a business reaches nothing of another's, whatever id it tries.

Account A is the harness's sandbox account; account B is another business on the same server
with its own channel, app secret, token and dashboard user. Each test tries one of A's ids with
B's credentials and checks what B sees and that A's data is unchanged. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.callback_receiver import Receiver, receiving
from tests.support.dashboard import add_user, client_for, sign_in
from tests.support.harness import Harness, running_gateway
from tests.support.hostile_peer import fixed, serving
from tests.support.processes import free_port
from tests.support.tenants import Tenant, add_tenant, open_window
from wagate.cloud.webhooks import sign
from wagate.store.tables import pending_statuses

CUSTOMER = "+14155552671"
CUSTOMER_WA = CUSTOMER[1:]
A_USER, B_USER = "a@example.com", "b@example.com"


@dataclass
class TwoTenants:
    gateway: Harness
    b: Tenant
    a_message: dict[str, Any]  # accepted by Meta (the sandbox): it has a wamid

    @property
    def a_id(self) -> str:
        return str(self.a_message["id"])

    @property
    def a_wamid(self) -> str:
        return str(self.a_message["wamid"])

    async def as_b(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.gateway.client.request(method, path, headers=self.b.auth, **kwargs)

    async def a_now(self) -> dict[str, Any]:
        return await self.gateway.message(self.a_id)


@pytest.fixture
async def tenants(database_url: str, tmp_path: Path) -> AsyncIterator[TwoTenants]:
    # The sandbox holds its statuses back, so A's message stays `accepted` (a failed status
    # could still move it) unless a test moves it.
    async with running_gateway(database_url, tmp_path / "data", status_delay=3600) as gateway:
        b = await add_tenant(gateway, "globex", graph_url="http://wagate.test/sandbox/graph")
        await gateway.reply(CUSTOMER, text="hello A")
        sent = await gateway.send(phone=CUSTOMER, message="A's order is ready", metadata={"a": 1})
        assert sent.status_code == 202, sent.text
        message = await gateway.wait_status(sent.json()["id"], "accepted")
        yield TwoTenants(gateway, b, message)


def signed(secret: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(payload).encode()
    return raw, {"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, raw)}


def failed_status(phone_number_id: str, wamid: str) -> dict[str, Any]:
    status = {
        "id": wamid,
        "status": "failed",
        "timestamp": str(int(time.time())),
        "recipient_id": CUSTOMER_WA,
        "errors": [{"code": 131026, "title": "Message undeliverable (from B)"}],
    }
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": phone_number_id}}
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": [{"field": "messages", "value": value | {"statuses": [status]}}]}
        ],
    }


# --------------------------------------------------------------------------- Meta's events


async def test_another_tenants_signed_status_cannot_fail_a_message(tenants: TwoTenants) -> None:
    """B knows A's wamid and posts a validly signed `failed` for it, from its own channel, on
    the shared path and on its channel's own path: A's message does not move."""
    gw, b = tenants.gateway, tenants.b
    raw, headers = signed(
        b.channel.app_secret, failed_status(b.channel.phone_number_id, tenants.a_wamid)
    )
    for path in ("/webhooks/whatsapp", f"/webhooks/whatsapp/{b.channel.id}"):
        answer = await gw.client.post(path, content=raw, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["statuses"] == 0
    a_message = await tenants.a_now()
    assert a_message["status"] == "accepted" and a_message["error"] is None
    assert [e["status"] for e in a_message["history"]] == ["queued", "accepted"]
    # Nor is B's report parked to be applied once A's wamid is recorded again.
    async with gw.engine.connect() as conn:
        parked = (await conn.execute(pending_statuses.select())).all()
    assert parked == []
    # B naming A's number, signed with B's secret, is not A's report either.
    raw, headers = signed(
        b.channel.app_secret, failed_status(gw.identity.phone_number_id, tenants.a_wamid)
    )
    await gw.client.post("/webhooks/whatsapp", content=raw, headers=headers)
    assert (await tenants.a_now())["status"] == "accepted"
    # A's own channel's report does move it: the check above is not vacuous.
    raw, headers = signed(
        gw.identity.app_secret, failed_status(gw.identity.phone_number_id, tenants.a_wamid)
    )
    assert (await gw.client.post("/webhooks/whatsapp", content=raw, headers=headers)).json()[
        "statuses"
    ] == 1
    assert (await tenants.a_now())["status"] == "failed"


async def test_another_tenants_customer_quoting_a_wamid_is_not_a_reply_to_it(
    tenants: TwoTenants,
) -> None:
    gw, b = tenants.gateway, tenants.b
    receiver = Receiver()
    with receiving(receiver, free_port()) as url:
        put = await tenants.as_b("PUT", "/v1/callback", json={"url": url})
        receiver.secret = put.json()["callback_secret"]
        message = {
            "from": CUSTOMER_WA,
            "id": "wamid.B-inbound",
            "timestamp": str(int(time.time())),
            "type": "text",
            "text": {"body": "about your message"},
            "context": {"id": tenants.a_wamid},
        }
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"phone_number_id": b.channel.phone_number_id},
            "messages": [message],
        }
        payload = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
        }
        raw, headers = signed(b.channel.app_secret, payload)
        answer = await gw.client.post(
            f"/webhooks/whatsapp/{b.channel.id}", content=raw, headers=headers
        )
        assert answer.json()["inbound"] == 1
        deadline = time.monotonic() + 10
        while not receiver.events("message.inbound"):
            assert time.monotonic() < deadline
            await _pause()
    [event] = receiver.events("message.inbound")
    assert event["data"]["reply_to"] is None
    assert event["data"]["channel_id"] == b.channel.id


# --------------------------------------------------------------------------- the API


async def test_messages_by_id_and_by_phone(tenants: TwoTenants) -> None:
    by_id = await tenants.as_b("GET", f"/v1/messages/{tenants.a_id}")
    assert by_id.status_code == 404 and by_id.json()["error"]["code"] == "not_found"
    by_phone = await tenants.as_b("GET", "/v1/messages", params={"phone": CUSTOMER})
    assert by_phone.status_code == 200 and by_phone.json()["data"] == []
    everything = await tenants.as_b("GET", "/v1/messages")
    assert everything.json()["data"] == []


async def test_reply_to_another_tenants_message_quotes_nothing_of_it(tenants: TwoTenants) -> None:
    gw, b = tenants.gateway, tenants.b
    await open_window(gw, b.channel, CUSTOMER)
    sent = await tenants.as_b(
        "POST", "/v1/messages", json={"phone": CUSTOMER, "message": "hi", "reply_to": tenants.a_id}
    )
    assert sent.status_code == 202, sent.text
    deadline = time.monotonic() + 10
    while len(gw.sent_to_meta) < 2:  # A's send, then B's
        assert time.monotonic() < deadline, gw.sent_to_meta
        await _pause()
    b_payload = gw.sent_to_meta[-1]
    assert b_payload["text"]["body"] == "hi"
    assert tenants.a_wamid not in json.dumps(b_payload)
    assert "context" not in b_payload


async def test_templates_of_another_tenant(tenants: TwoTenants) -> None:
    gw = tenants.gateway
    synced = await gw.client.post("/v1/templates/sync", headers=gw.auth)
    assert synced.status_code == 200 and synced.json()["data"]
    a_channel = (await gw.sandbox_channel()).id
    listed = await tenants.as_b("GET", "/v1/templates", params={"channel": a_channel})
    assert listed.status_code == 200 and listed.json()["data"] == []
    assert (await tenants.as_b("GET", "/v1/templates")).json()["data"] == []
    template = synced.json()["data"][0]
    send = await tenants.as_b(
        "POST",
        "/v1/messages/template",
        json={"phone": CUSTOMER, "template": template["name"], "channel": a_channel},
    )
    assert send.status_code == 422 and send.json()["error"]["code"] == "unknown_channel"


async def test_callbacks_of_another_tenant(tenants: TwoTenants) -> None:
    gw = tenants.gateway
    # A's events go nowhere reachable (no network here): its deliveries stay listed.
    await gw.client.put("/v1/callback", json={"url": "https://a.example.com/hook"}, headers=gw.auth)
    await gw.reply(CUSTOMER, text="again")
    a_deliveries = (await gw.client.get("/v1/callbacks", headers=gw.auth)).json()["data"]
    assert a_deliveries
    delivery = a_deliveries[0]["id"]
    assert (await tenants.as_b("GET", f"/v1/callbacks/{delivery}")).status_code == 404
    replay = await tenants.as_b("POST", f"/v1/callbacks/{delivery}/replay")
    assert replay.status_code == 404 and replay.json()["error"]["code"] == "not_found"
    assert (await tenants.as_b("GET", "/v1/callbacks")).json()["data"] == []
    b_config = (await tenants.as_b("GET", "/v1/callback")).json()
    assert b_config["callback_url"] is None


async def test_conversations_and_channels_of_another_tenant(tenants: TwoTenants) -> None:
    gw = tenants.gateway
    a_channel = (await gw.sandbox_channel()).id
    own = await tenants.as_b("GET", f"/v1/conversations/{CUSTOMER}")
    assert own.status_code == 200
    assert own.json()["messages"] == [] and own.json()["window_open"] is False
    theirs = await tenants.as_b(
        "GET", f"/v1/conversations/{CUSTOMER}", params={"channel": a_channel}
    )
    assert theirs.status_code == 404
    channels = (await tenants.as_b("GET", "/v1/channels")).json()["data"]
    assert [c["id"] for c in channels] == [tenants.b.channel.id]
    send = await tenants.as_b(
        "POST", "/v1/messages", json={"phone": CUSTOMER, "message": "hi", "channel": a_channel}
    )
    assert send.status_code == 422 and send.json()["error"]["code"] == "unknown_channel"


# --------------------------------------------------------------------------- the dashboard


async def test_the_dashboard_by_id(tenants: TwoTenants) -> None:
    gw, b = tenants.gateway, tenants.b
    await add_user(gw.engine, account="sandbox", email=A_USER, is_admin=True)
    await add_user(gw.engine, account=b.name, email=B_USER, is_admin=True)
    a_channel = (await gw.sandbox_channel()).id
    async with gw.engine.connect() as conn:
        from wagate.store import accounts as account_store

        [a_token] = await account_store.list_tokens(conn, account_id=await gw.account_id())
    async with client_for(gw.app) as browser:
        csrf = await sign_in(browser, B_USER)
        assert (await browser.get(f"/messages/{tenants.a_id}")).status_code == 404
        assert (await browser.get(f"/channels/{a_channel}/edit")).status_code == 404
        edit = await browser.post(
            f"/channels/{a_channel}",
            data={"csrf_token": csrf, "phone_number_id": "1", "waba_id": "2", "verify_token": "v"},
        )
        assert edit.status_code == 404
        revoke = await browser.post(
            f"/settings/api/tokens/{a_token['id']}/revoke", data={"csrf_token": csrf}
        )
        assert revoke.status_code == 404
        users = (await browser.get("/settings/users")).text
        conversation = (await browser.get(f"/conversations/{CUSTOMER_WA}")).text
    assert A_USER not in users and B_USER in users
    assert "A&#39;s order is ready" not in conversation and "A's order" not in conversation
    # A's token still works.
    assert (await gw.client.get("/v1/channels", headers=gw.auth)).status_code == 200


# --------------------------------------------------------------------------- a hostile Graph URL


async def test_a_graph_url_answering_another_tenants_wamid_fails_only_its_own_message(
    tmp_path: Path,
) -> None:
    """B's Graph URL answers every send with A's wamid. Recorded, it would break the unique
    wamid and with it the transaction of every send in the batch (A's included), which would
    all go out again and again. Instead B's message fails, and A's are sent once."""
    from tests.support.tenants import sqlite_url

    async with running_gateway(
        sqlite_url(tmp_path), tmp_path / "data", graph_over_network=True, status_delay=3600
    ) as gw:
        await gw.reply(CUSTOMER, text="hello A")
        first = (await gw.send(phone=CUSTOMER, message="one")).json()["id"]
        a_wamid = (await gw.wait_status(first, "accepted"))["wamid"]
        answer = json.dumps({"messages": [{"id": a_wamid}]}).encode()
        async with serving(fixed(200, answer)) as (graph_url, peer):
            b = await add_tenant(gw, "globex", graph_url=graph_url)
            await open_window(gw, b.channel, CUSTOMER)
            b_sent = await gw.client.post(
                "/v1/messages", json={"phone": CUSTOMER, "message": "B"}, headers=b.auth
            )
            a_sent = await gw.send(phone=CUSTOMER, message="two")
            b_failed = await wait_status_of(gw, b, b_sent.json()["id"], "failed")
            a_second = await gw.wait_status(a_sent.json()["id"], "accepted")
            await _pause(1.0)
        first_now = await gw.message(first)
    assert b_failed["error"]["code"] == "invalid_response" and b_failed["wamid"] is None
    assert a_second["wamid"] not in (None, a_wamid)
    assert first_now["wamid"] == a_wamid and first_now["status"] == "accepted"
    assert len(peer.requests) == 1  # B's message was not sent again


async def wait_status_of(gw: Harness, tenant: Tenant, message_id: str, status: str) -> Any:
    deadline = time.monotonic() + 10
    while True:
        found = (await gw.client.get(f"/v1/messages/{message_id}", headers=tenant.auth)).json()
        if found["status"] == status:
            return found
        assert time.monotonic() < deadline, found
        await _pause()


async def _pause(seconds: float = 0.05) -> None:
    import asyncio

    await asyncio.sleep(seconds)


# --------------------------------------------------------------------------- more lookups by id


async def test_callback_settings_of_another_tenant_are_untouched(tenants: TwoTenants) -> None:
    gw = tenants.gateway
    mine = await gw.client.put(
        "/v1/callback", json={"url": "https://a.example.com/hook"}, headers=gw.auth
    )
    assert mine.status_code == 200, mine.text
    a_before = (await gw.client.get("/v1/callback", headers=gw.auth)).json()
    assert (await tenants.as_b("GET", "/v1/callback")).json()["callback_url"] is None
    b_set = await tenants.as_b("PUT", "/v1/callback", json={"url": "https://b.example.com/hook"})
    assert b_set.status_code == 200
    assert (await tenants.as_b("DELETE", "/v1/callback")).status_code in (200, 204)
    assert (await gw.client.get("/v1/callback", headers=gw.auth)).json() == a_before


async def test_a_cursor_of_another_tenants_listing_shows_only_ones_own(
    tenants: TwoTenants,
) -> None:
    gw = tenants.gateway
    for text in ("two", "three"):
        assert (await gw.send(phone=CUSTOMER, message=text)).status_code == 202
    page = (await gw.client.get("/v1/messages", params={"limit": 1}, headers=gw.auth)).json()
    assert page["next_cursor"]
    theirs = await tenants.as_b("GET", "/v1/messages", params={"cursor": page["next_cursor"]})
    assert theirs.status_code in (200, 422), theirs.text
    if theirs.status_code == 200:
        assert theirs.json()["data"] == []


async def test_another_tenants_template_names_are_unknown(tenants: TwoTenants) -> None:
    gw, b = tenants.gateway, tenants.b
    synced = await gw.client.post("/v1/templates/sync", headers=gw.auth)
    name = synced.json()["data"][0]["name"]
    await open_window(gw, b.channel, CUSTOMER)
    by_name = await tenants.as_b("GET", "/v1/templates", params={"name": name})
    assert by_name.json()["data"] == []
    send = await tenants.as_b(
        "POST", "/v1/messages/template", json={"phone": CUSTOMER, "template": name}
    )
    assert send.status_code == 422 and send.json()["error"]["code"] == "template_not_found"


async def test_the_dashboards_live_pages_replays_and_sends_by_id(tenants: TwoTenants) -> None:
    gw, b = tenants.gateway, tenants.b
    await gw.client.put("/v1/callback", json={"url": "https://a.example.com/hook"}, headers=gw.auth)
    await gw.reply(CUSTOMER, text="again")
    [delivery, *_] = (await gw.client.get("/v1/callbacks", headers=gw.auth)).json()["data"]
    a_channel = (await gw.sandbox_channel()).id
    await add_user(gw.engine, account=b.name, email=B_USER, is_admin=True)
    before = len(gw.sent_to_meta)
    async with client_for(gw.app) as browser:
        csrf = await sign_in(browser, B_USER)
        assert (await browser.get(f"/messages/{tenants.a_id}/live")).status_code == 404
        live = await browser.get(f"/conversations/{CUSTOMER_WA}/live")
        assert "A&#39;s order is ready" not in live.text and "hello A" not in live.text
        replay = await browser.post(
            f"/callbacks/{delivery['id']}/replay", data={"csrf_token": csrf}
        )
        assert replay.status_code == 404
        through_a = await browser.post(
            f"/conversations/{CUSTOMER_WA}/send",
            data={"csrf_token": csrf, "channel": a_channel, "text": "from B via A"},
        )
        assert through_a.status_code in (404, 422), through_a.status_code
        # B has no sandbox channel: there is no sandbox phone to see A's customers through.
        assert (await browser.get(f"/sandbox-phone/{CUSTOMER_WA}")).status_code == 404
    assert len(gw.sent_to_meta) == before  # nothing was sent through A's channel
