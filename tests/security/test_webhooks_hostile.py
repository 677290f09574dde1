"""Meta's webhook endpoint facing strangers and bad input (SPEC §10): what an unsigned or forged
POST costs, oversized and malformed batches, an unstorable item in a batch, and the parked
statuses nothing would ever match."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.support.dashboard import add_user, client_for, sign_in
from tests.support.harness import Harness, running_gateway
from tests.support.tenants import add_channel, sqlite_url
from wagate.clock import ManualClock
from wagate.cloud.webhook_guard import MAX_SECRETS
from wagate.cloud.webhooks import sign
from wagate.config import Settings
from wagate.dispatch.pruner import Pruner
from wagate.store.retention import RULES
from wagate.store.tables import pending_statuses, webhook_events

CUSTOMER_WA = "14155552671"
NOW = int(time.time())
SHARED = "/webhooks/whatsapp"


def batch(phone_number_id: str, *, messages: Any = (), statuses: Any = ()) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": phone_number_id},
    }
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }


def text(wamid: str, body: str, sender: str = CUSTOMER_WA) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": str(NOW),
        "type": "text",
        "text": {"body": body},
    }


def status(wamid: str, name: str = "delivered") -> dict[str, Any]:
    return {"id": wamid, "status": name, "timestamp": str(NOW), "recipient_id": CUSTOMER_WA}


async def post(
    gw: Harness, raw: bytes, *, path: str = SHARED, secret: str | None = None
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(secret or gw.identity.app_secret, raw),
    }
    return await gw.client.post(path, content=raw, headers=headers)


async def count(gw: Harness, table: Any) -> int:
    async with gw.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Harness]:
    """Where storage does not matter: SQLite."""
    async with running_gateway(sqlite_url(tmp_path), tmp_path / "data") as harness:
        yield harness


# --------------------------------------------------------------------------- a channel's own path


async def test_a_channels_own_path_verifies_and_takes_its_events(gw: Harness) -> None:
    channel = await gw.sandbox_channel()
    other = await add_channel(gw, account_id=await gw.account_id())
    path = f"/webhooks/whatsapp/{channel.id}"
    hub = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    ok = await gw.client.get(path, params=hub | {"hub.verify_token": channel.verify_token})
    assert (ok.status_code, ok.text) == (200, "1158201444")
    for wrong in (
        await gw.client.get(path, params=hub | {"hub.verify_token": other.verify_token}),
        await gw.client.get(
            "/webhooks/whatsapp/ch_nope", params=hub | {"hub.verify_token": channel.verify_token}
        ),
    ):
        assert wrong.status_code == 403
        assert wrong.json()["error"]["code"] == "verification_failed"
    raw = json.dumps(batch(channel.phone_number_id, messages=[text("wamid.own", "hi")])).encode()
    taken = await post(gw, raw, path=path)
    assert taken.status_code == 200 and taken.json()["inbound"] == 1
    # Another channel's path checks that channel's secret only.
    refused = await post(gw, raw, path=f"/webhooks/whatsapp/{other.id}")
    assert refused.status_code == 401
    assert (await post(gw, raw, path="/webhooks/whatsapp/ch_nope")).status_code == 401


async def test_the_channels_page_shows_each_channels_own_webhook_url(gw: Harness) -> None:
    channel = await gw.sandbox_channel()
    await add_user(gw.engine, account="sandbox", email="ops@example.com", is_admin=True)
    async with client_for(gw.app) as browser:
        await sign_in(browser, "ops@example.com")
        page = (await browser.get("/channels")).text
    assert f'value="http://wagate.test/webhooks/whatsapp/{channel.id}"' in page
    assert "http://wagate.test/webhooks/whatsapp</code> keeps working" in page


# --------------------------------------------------------------------------- what a stranger costs


async def never_ending(first: bytes) -> AsyncIterator[bytes]:
    yield first
    await asyncio.Event().wait()  # the rest never comes
    yield b""


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-Hub-Signature-256": "sha1=abc"}, 401),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64, "Content-Length": str(9 << 20)}, 413),
    ],
    ids=["unsigned", "malformed-signature", "over-8-MiB"],
)
async def test_a_post_is_refused_before_its_body_is_read(
    gw: Harness, headers: dict[str, str], status: int
) -> None:
    """The body of a refused request never has to arrive: its sender holds nothing open."""
    answer = await asyncio.wait_for(
        gw.client.post(SHARED, content=never_ending(b'{"object": '), headers=headers),
        timeout=5,
    )
    assert answer.status_code == status
    assert answer.json()["error"]["code"] in ("invalid_signature", "payload_too_large")


@pytest.fixture
def hmacs(monkeypatch: pytest.MonkeyPatch) -> Callable[[bytes], int]:
    """How many HMACs were computed over a given body (the standard library's hmac.new,
    counted; what it computes is unchanged)."""
    seen: list[bytes] = []
    original = hmac.new

    def counting(key: bytes, msg: Any = None, digestmod: Any = None) -> Any:
        if isinstance(msg, bytes | bytearray):
            seen.append(bytes(msg[:64]) + len(msg).to_bytes(8, "big"))
        return original(key, msg, digestmod)

    monkeypatch.setattr(hmac, "new", counting)
    return lambda raw: seen.count(raw[:64] + len(raw).to_bytes(8, "big"))


async def test_a_forged_post_costs_a_few_hmacs_whatever_the_number_of_channels(
    gw: Harness, hmacs: Callable[[bytes], int]
) -> None:
    account = await gw.account_id()
    channels = [await add_channel(gw, account_id=account) for _ in range(40)]
    # The attacker's best: a 1 MiB body naming every channel, with a well-formed signature.
    changes = [
        {
            "field": "messages",
            "value": {"metadata": {"phone_number_id": c.phone_number_id}, "statuses": []},
        }
        for c in channels
    ]
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": c.waba_id, "changes": changes} for c in channels[:1]],
        "pad": "x" * (1 << 20),
    }
    raw = json.dumps(payload).encode()
    forged = {"X-Hub-Signature-256": "sha256=" + hashlib.sha256(raw).hexdigest()}
    shared = await gw.client.post(SHARED, content=raw, headers=forged)
    assert shared.status_code == 401
    assert 1 <= hmacs(raw) <= MAX_SECRETS
    own = await gw.client.post(f"/webhooks/whatsapp/{channels[0].id}", content=raw, headers=forged)
    assert own.status_code == 401
    assert hmacs(raw) <= MAX_SECRETS + 1


# --------------------------------------------------------------------------- oversized batches


async def test_a_batch_over_metas_size_is_refused_before_it_is_parsed(gw: Harness) -> None:
    number = gw.identity.phone_number_id
    flood = [status(f"wamid.unknown.{i}") for i in range(40_000)]
    raw = json.dumps(batch(number, statuses=flood)).encode()
    assert len(raw) < 8 << 20
    refused = await post(gw, raw)
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"
    assert "1,000" in refused.json()["error"]["message"]
    just_over = json.dumps(batch(number, statuses=flood[:1001])).encode()
    assert (await post(gw, just_over)).status_code == 413
    assert await count(gw, webhook_events) == 0 and await count(gw, pending_statuses) == 0
    at_the_limit = json.dumps(batch(number, statuses=flood[:1000])).encode()
    assert (await post(gw, at_the_limit)).status_code == 200
    assert await count(gw, pending_statuses) == 1000


# --------------------------------------------------------------------------- malformed JSON


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


async def test_json_nested_too_deep_or_with_huge_numbers_is_a_400(gw: Harness) -> None:
    path = await gw.webhook_path()
    huge = "1" * 5000
    for raw in (
        deep(30_000).encode(),
        f'{{"object": "whatsapp_business_account", "entry": {deep(100)}}}'.encode(),
        f'{{"object": "whatsapp_business_account", "entry": [{huge}]}}'.encode(),
    ):
        answer = await post(gw, raw, path=path)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_body"
    await gw.reply("+" + CUSTOMER_WA, text="hi")
    for method, api_path, body in (
        ("POST", "/v1/messages", '{"phone": "+14155552671", "message": "hi", "metadata": %s}'),
        ("PUT", "/v1/callback", '{"url": %s}'),
    ):
        for value in (deep(30_000), deep(200), huge):
            answer = await gw.client.request(
                method,
                api_path,
                content=(body % value).encode(),
                headers=gw.auth | {"Content-Type": "application/json"},
            )
            assert answer.status_code == 400, (api_path, answer.text[:200])
            assert answer.json()["error"]["code"] == "invalid_body"


# --------------------------------------------------------------------------- unstorable items


async def test_a_batch_with_an_unstorable_message_stores_the_rest(
    database_url: str, tmp_path: Path
) -> None:
    """A NUL (no PostgreSQL text column takes one) and a sender id longer than any phone
    number: the batch is still answered 200, and every other message opens its window."""
    async with running_gateway(database_url, tmp_path / "data") as gw:
        good, nul, odd = "14155550001", "14155550002", "1" * 30
        messages = [
            text("wamid.good", "hello", good),
            text("wamid.nul", "bad\u0000byte", nul),
            text("wamid.odd", "from nowhere", odd),
        ]
        raw = json.dumps(batch(gw.identity.phone_number_id, messages=messages)).encode()
        answer = await post(gw, raw)
        assert answer.status_code == 200, answer.text
        assert answer.json()["inbound"] >= 2
        again = await post(gw, raw)  # Meta's retry changes nothing
        assert again.status_code == 200 and again.json()["inbound"] == 0
        for phone, body in ((good, "hello"), (nul, "bad\ufffdbyte")):
            view = await gw.client.get(f"/v1/conversations/+{phone}", headers=gw.auth)
            assert view.json()["window_open"] is True, view.text
            assert view.json()["messages"][0]["text"] == body
        assert await count(gw, webhook_events) == 2  # each signed POST is kept, raw


# --------------------------------------------------------------------------- parked statuses

PARKED = tuple(rule for rule in RULES if rule.name == "parked statuses")


async def test_parked_statuses_that_never_match_are_dropped_after_a_day(
    database_url: str, tmp_path: Path
) -> None:
    async with running_gateway(database_url, tmp_path / "data") as gw:
        statuses = [status(f"wamid.never.{i}", "sent") for i in range(5)]
        raw = json.dumps(batch(gw.identity.phone_number_id, statuses=statuses)).encode()
        assert (await post(gw, raw)).status_code == 200
        assert await count(gw, pending_statuses) == 5
        clock = ManualClock()
        pruner = Pruner(
            engine=gw.engine, settings=Settings(retention_batch=2), clock=clock, rules=PARKED
        )
        assert (await pruner.prune(pause=0))["parked statuses"] == 0  # not a day old yet
        clock.advance(hours=23)
        assert (await pruner.prune(pause=0))["parked statuses"] == 0
        clock.advance(hours=2)
        assert (await pruner.prune(pause=0))["parked statuses"] == 5  # in batches of 2
        assert await count(gw, pending_statuses) == 0


async def test_the_pruner_runs_with_the_dispatcher(database_url: str, tmp_path: Path) -> None:
    async with running_gateway(database_url, tmp_path / "data", retention_interval=0.1) as gw:
        raw = json.dumps(batch(gw.identity.phone_number_id, statuses=[status("wamid.x")])).encode()
        await post(gw, raw)
        async with gw.engine.begin() as conn:
            await conn.execute(
                pending_statuses.update().values(received_at=gw.clock.now() - timedelta(days=2))
            )
        deadline = time.monotonic() + 10
        while await count(gw, pending_statuses):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- documentation


async def test_openapi_documents_the_webhooks_error_answers(gw: Harness) -> None:
    paths = (await gw.client.get("/openapi.json")).json()["paths"]
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for path in ("/webhooks/whatsapp", "/webhooks/whatsapp/{channel_id}"):
        post_answers = paths[path]["post"]["responses"]
        get_answers = paths[path]["get"]["responses"]
        for code in ("400", "401", "413"):
            assert post_answers[code]["content"]["application/json"]["schema"] == error
        assert get_answers["403"]["content"]["application/json"]["schema"] == error
    assert (await gw.client.get("/webhooks/whatsapp")).status_code == 403
