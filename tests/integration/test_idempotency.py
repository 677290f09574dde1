"""Idempotency keys: a retried POST never sends twice (SPEC §1, issue 4 point 3)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from tests.support.harness import Harness, running_gateway
from wagate.api.acceptor import Acceptor
from wagate.clock import ManualClock, SystemClock
from wagate.domain.messages import parse_send_request
from wagate.store import accounts as account_store
from wagate.store.accepts import AcceptRequest
from wagate.store.db import make_async_engine, write_tx
from wagate.store.idempotency import Replayed
from wagate.store.tables import messages

CUSTOMER = "+14155552671"


async def _message_count(gateway: Harness) -> int:
    async with gateway.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(messages))).scalar_one())


def _sends_to(gateway: Harness, body: str) -> int:
    return sum(1 for p in gateway.sent_to_meta if p.get("text", {}).get("body") == body)


async def test_a_repeat_returns_the_first_answer_and_sends_nothing(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    headers = gateway.auth | {"Idempotency-Key": "order-4521-shipped"}
    body = {"phone": CUSTOMER, "message": "Your order shipped"}
    first = await gateway.client.post("/v1/messages", json=body, headers=headers)
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    await gateway.wait_status(first.json()["id"], "read")

    again = await gateway.client.post("/v1/messages", json=body, headers=headers)
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # The same request as a form with the key as a field is the same request.
    form = await gateway.client.post(
        "/v1/messages",
        data=body | {"idempotency_key": "order-4521-shipped", "token": gateway.token},
    )
    assert form.status_code == 202
    assert form.json()["id"] == first.json()["id"]
    await asyncio.sleep(0.2)
    assert await _message_count(gateway) == 1
    assert _sends_to(gateway, "Your order shipped") == 1


async def test_the_same_key_with_another_body_is_a_conflict(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    headers = gateway.auth | {"Idempotency-Key": "k1"}
    first = await gateway.client.post(
        "/v1/messages", json={"phone": CUSTOMER, "message": "one"}, headers=headers
    )
    assert first.status_code == 202
    other = await gateway.client.post(
        "/v1/messages", json={"phone": CUSTOMER, "message": "two"}, headers=headers
    )
    assert other.status_code == 409
    error = other.json()["error"]
    assert error["code"] == "idempotency_conflict"
    assert error["field"] == "idempotency_key"
    assert "k1" in error["message"]
    assert await _message_count(gateway) == 1


async def test_concurrent_repeats_create_exactly_one_message(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    body = {"phone": CUSTOMER, "message": "Only once, please", "idempotency_key": "burst-1"}
    answers = await asyncio.gather(
        *(gateway.client.post("/v1/messages", json=body, headers=gateway.auth) for _ in range(40))
    )
    assert {a.status_code for a in answers} == {202}
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    await gateway.wait_status(ids.pop(), "read")
    assert sum(1 for a in answers if "idempotent-replayed" not in a.headers) == 1
    assert await _message_count(gateway) == 1
    assert _sends_to(gateway, "Only once, please") == 1


async def test_keys_belong_to_one_account(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    async with write_tx(gateway.engine) as conn:
        other = await account_store.create_account(conn, name="other", now=gateway.clock.now())
        token, _ = await account_store.create_token(
            conn, account_id=other["id"], name="t", now=gateway.clock.now()
        )
    body = {"phone": CUSTOMER, "message": "hello", "idempotency_key": "shared-key"}
    mine = await gateway.client.post("/v1/messages", json=body, headers=gateway.auth)
    assert mine.status_code == 202
    theirs = await gateway.client.post(
        "/v1/messages", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    # Their own answer (they have no channel), not a replay of ours.
    assert theirs.status_code == 422
    assert theirs.json()["error"]["code"] == "unknown_channel"


async def test_a_refusal_is_not_remembered(gateway: Harness) -> None:
    body = {"phone": CUSTOMER, "message": "hello", "idempotency_key": "after-window"}
    closed = await gateway.client.post("/v1/messages", json=body, headers=gateway.auth)
    assert closed.status_code == 409
    assert closed.json()["error"]["code"] == "outside_service_window"
    await gateway.reply(CUSTOMER, text="hi")
    opened = await gateway.client.post("/v1/messages", json=body, headers=gateway.auth)
    assert opened.status_code == 202
    assert "idempotent-replayed" not in opened.headers


async def test_header_and_field_must_agree(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    response = await gateway.client.post(
        "/v1/messages",
        json={"phone": CUSTOMER, "message": "x", "idempotency_key": "a"},
        headers=gateway.auth | {"Idempotency-Key": "b"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "idempotency_key"
    too_long = await gateway.client.post(
        "/v1/messages",
        json={"phone": CUSTOMER, "message": "x"},
        headers=gateway.auth | {"Idempotency-Key": "k" * 256},
    )
    assert too_long.status_code == 422
    assert too_long.json()["error"]["code"] == "field_too_long"
    assert await _message_count(gateway) == 0


async def test_keys_are_kept_24_hours(database_url: str, tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_gateway(database_url, tmp_path / "data", clock=clock) as gateway:
        await gateway.reply(CUSTOMER, text="hi")
        clock.advance(seconds=60)
        body = {"phone": CUSTOMER, "message": "daily digest", "idempotency_key": "digest"}
        first = await gateway.client.post("/v1/messages", json=body, headers=gateway.auth)
        clock.advance(hours=23, minutes=58)
        again = await gateway.client.post("/v1/messages", json=body, headers=gateway.auth)
        assert again.json()["id"] == first.json()["id"]
        clock.advance(minutes=3)
        # 24 hours on, the key is forgotten: the request is judged afresh (and by now the
        # customer's window has closed too), instead of replaying the first 202.
        later = await gateway.client.post("/v1/messages", json=body, headers=gateway.auth)
        assert later.status_code == 409, later.text
        assert later.json()["error"]["code"] == "outside_service_window"


async def test_two_processes_storing_one_key_at_once_make_one_message(
    database_url: str, tmp_path: Path
) -> None:
    """Two acceptors on separate engines stand for two `wagate api` processes: on PostgreSQL
    their transactions really overlap, and the second waits for the first's key."""
    async with running_gateway(database_url, tmp_path / "data", run_dispatcher=False) as gateway:
        await gateway.reply(CUSTOMER, text="hi")
        engines = [make_async_engine(database_url) for _ in range(2)]
        acceptors = [Acceptor(e, SystemClock()) for e in engines]
        request = parse_send_request(
            {"phone": CUSTOMER, "message": "race", "idempotency_key": "race-1"}, form=False
        )
        try:
            outcomes = await asyncio.gather(
                *(acceptors[i % 2].accept(AcceptRequest(gateway.token, request)) for i in range(20))
            )
        finally:
            for acceptor in acceptors:
                await acceptor.aclose()
            for engine in engines:
                await engine.dispose()
        assert all(isinstance(o, dict | Replayed) for o in outcomes), outcomes
        ids = {o["id"] if isinstance(o, dict) else o.message_id for o in outcomes}  # type: ignore[union-attr]
        assert len(ids) == 1
        assert sum(1 for o in outcomes if isinstance(o, dict)) == 1
        assert await _message_count(gateway) == 1
