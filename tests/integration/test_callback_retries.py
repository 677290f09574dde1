"""Callbacks when the business's receiver fails: retried with backoff and delivered in order once
it is back, given up after the configured age (25 hours by default, shown with a manual clock)
and kept as dead letters that `GET /v1/callbacks?status=failed` lists and
`POST /v1/callbacks/{id}/replay` sends again; other accounts see none of it. SQLite and
PostgreSQL, the receiver a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.integration.test_callbacks import (
    CUSTOMER,
    LIFECYCLE,
    deliveries,
    eventually,
    set_callback,
    settled,
)
from tests.support.callback_receiver import Receiver, receiving
from tests.support.harness import Harness, running_gateway
from tests.support.processes import free_port
from wagate.clock import ManualClock
from wagate.dispatch.callbacks import CallbackSender
from wagate.store import accounts as account_store
from wagate.store.db import make_async_engine, write_tx

QUICK = {"callback_retry_base": 0.2, "callback_retry_max": 0.4}


async def delivery(gateway: Harness, delivery_id: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else gateway.auth
    return await gateway.client.get(f"/v1/callbacks/{delivery_id}", headers=headers)


async def replay(gateway: Harness, delivery_id: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else gateway.auth
    return await gateway.client.post(f"/v1/callbacks/{delivery_id}/replay", headers=headers)


async def test_a_receiver_down_for_a_while_gets_every_event_in_order(
    database_url: str, tmp_path: Path
) -> None:
    async with running_gateway(database_url, tmp_path / "data", **QUICK) as gateway:
        receiver = Receiver()
        port = free_port()
        # Nothing listens there yet: connections are refused.
        receiver.secret = await set_callback(gateway, f"http://127.0.0.1:{port}/events")
        await gateway.reply(CUSTOMER, text="hi")
        sent = await gateway.send(phone=CUSTOMER, message="hello", metadata={"k": "v"})
        message_id = sent.json()["id"]
        await gateway.wait_status(message_id, "read")

        async def head_retried() -> dict[str, Any]:
            pending = [d for d in await deliveries(gateway, status="pending") if d["message_id"]]
            assert [d["event"]["data"]["status"] for d in pending] == LIFECYCLE[::-1]
            head = pending[-1]
            assert head["attempts"] >= 3, head
            return head

        async def poll() -> dict[str, Any]:
            for _ in range(200):
                try:
                    return await head_retried()
                except AssertionError:
                    await asyncio.sleep(0.05)
            return await head_retried()

        head = await poll()
        # Said in words, with no `ssl:default` from the HTTP library for an http URL.
        assert head["last_error"].startswith(f"Connection refused by 127.0.0.1:{port}"), head
        assert "ssl" not in head["last_error"] and head["last_status_code"] is None
        # Only the head of the message's lane is tried; the later steps wait their turn.
        pending = await deliveries(gateway, status="pending")
        assert [d["attempts"] for d in pending if d["message_id"]][:3] == [0, 0, 0]
        # A pending delivery is retried on its own: there is nothing to replay.
        busy = await replay(gateway, head["id"])
        assert busy.status_code == 409, busy.text
        assert busy.json()["error"]["code"] == "callback_pending"

        # Up, but answering 500 for a while.
        receiver.fail_with = 500
        with receiving(receiver, port):
            await eventually(lambda: receiver.attempts >= 2)
            # Those may include the inbound event's lane: wait for the head's answer on record.
            for _ in range(200):
                refused = (await delivery(gateway, head["id"])).json()
                if refused["last_status_code"] is not None:
                    break
                await asyncio.sleep(0.05)
            assert refused["last_status_code"] == 500
            assert refused["last_error"] == "HTTP 500: receiver is having a bad day"
            assert receiver.received == []
            # Back to normal: everything arrives, each message's steps in order.
            receiver.fail_with = None
            await eventually(lambda: receiver.statuses(message_id) == LIFECYCLE)
            await eventually(lambda: len(receiver.events("message.inbound")) == 1)
            await settled(gateway)
        assert receiver.rejected == []
        done = (await delivery(gateway, head["id"])).json()
        assert done["status"] == "delivered" and done["attempts"] > refused["attempts"]
        assert done["last_status_code"] == 204 and done["last_error"] is None


async def other_account_token(gateway: Harness) -> str:
    async with write_tx(gateway.engine) as conn:
        other = await account_store.create_account(conn, name="globex", now=gateway.clock.now())
        token, _ = await account_store.create_token(
            conn, account_id=other["id"], name="t", now=gateway.clock.now()
        )
    return token


async def test_dead_letters_are_listed_and_replayed(database_url: str, tmp_path: Path) -> None:
    settings = QUICK | {"callback_give_up_after": 1.0}
    async with running_gateway(database_url, tmp_path / "data", **settings) as gateway:
        receiver = Receiver(fail_with=500)
        with receiving(receiver, free_port()) as url:
            receiver.secret = await set_callback(gateway, url)
            for text in ("one", "two", "three"):
                await gateway.reply(CUSTOMER, text=text)

            async def all_dead() -> list[dict[str, Any]]:
                dead = await deliveries(gateway, status="failed")
                assert len(dead) == 3, dead
                return dead

            for _ in range(200):
                if len(await deliveries(gateway, status="failed")) == 3:
                    break
                await asyncio.sleep(0.05)
            dead = await all_dead()
            # Newest first; each with why it failed.
            assert [d["event"]["data"]["text"] for d in dead] == ["three", "two", "one"]
            for d in dead:
                assert d["last_status_code"] == 500 and d["attempts"] >= 1
                assert d["last_error"] == "HTTP 500: receiver is having a bad day"
                assert d["next_attempt_at"] is None and d["delivered_at"] is None
            # Pages of two, by cursor.
            page = await gateway.client.get(
                "/v1/callbacks", params={"status": "failed", "limit": 2}, headers=gateway.auth
            )
            first = page.json()
            assert [d["id"] for d in first["data"]] == [d["id"] for d in dead[:2]]
            rest = await gateway.client.get(
                "/v1/callbacks",
                params={"status": "failed", "limit": 2, "cursor": first["next_cursor"]},
                headers=gateway.auth,
            )
            assert [d["id"] for d in rest.json()["data"]] == [dead[2]["id"]]
            assert rest.json()["next_cursor"] is None

            # Another account sees none of it and cannot replay it.
            other = await other_account_token(gateway)
            assert (await delivery(gateway, dead[0]["id"], other)).status_code == 404
            refused = await replay(gateway, dead[0]["id"], other)
            assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
            listed = await gateway.client.get(
                "/v1/callbacks", headers={"Authorization": f"Bearer {other}"}
            )
            assert listed.json() == {"data": [], "next_cursor": None}
            assert (await replay(gateway, "evt_nope")).status_code == 404

            # The receiver is fixed; the business replays the oldest dead letter.
            receiver.fail_with = None
            oldest = dead[-1]
            replayed = await replay(gateway, oldest["id"])
            assert replayed.status_code == 202, replayed.text
            assert replayed.json()["status"] == "pending"
            await eventually(lambda: [e["data"]["text"] for e in receiver.events()] == ["one"])
            assert receiver.events()[0] == oldest["event"]  # the very same event, id included
            await settled(gateway)
            after = (await delivery(gateway, oldest["id"])).json()
            assert after["status"] == "delivered" and after["last_status_code"] == 204
            assert len(await deliveries(gateway, status="failed")) == 2
            # A delivered event can be sent again too (the receiver drops repeats by id).
            assert (await replay(gateway, oldest["id"])).status_code == 202
            await eventually(lambda: len(receiver.received) == 2)
            assert receiver.events()[1]["id"] == oldest["id"]


async def test_retried_for_24_hours_then_a_dead_letter(database_url: str, tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_gateway(
        database_url, tmp_path / "data", clock=clock, run_dispatcher=False
    ) as gateway:
        sender = gateway.dispatcher.callbacks
        receiver = Receiver(fail_with=503, clock=lambda: clock.now().timestamp())
        with receiving(receiver, free_port()) as url:
            receiver.secret = await set_callback(gateway, url)
            await gateway.reply(CUSTOMER, text="hello?")
            await sender.drain()
            [event] = await deliveries(gateway)
            created = at(event["created_at"])
            assert event["attempts"] == 1 and receiver.attempts == 1
            # The first retry within a minute.
            assert at(event["next_attempt_at"]) - created <= timedelta(minutes=1)

            while clock.now() - created < timedelta(hours=24):
                due = at(event["next_attempt_at"])
                clock.advance(seconds=(due - clock.now()).total_seconds() + 1)
                await sender.drain()
                later = (await delivery(gateway, event["id"])).json()
                assert later["attempts"] == event["attempts"] + 1, later
                assert later["status"] == "pending", (clock.now() - created, later)
                assert at(later["next_attempt_at"]) - clock.now() <= timedelta(hours=1)
                event = later
            assert receiver.attempts == event["attempts"] > 20  # every try was a real POST

            # The last try is at 25 hours; its failure makes the event a dead letter.
            clock.advance(hours=1, minutes=1)
            await sender.drain()
            [dead] = await deliveries(gateway, status="failed")
            assert dead["attempts"] == event["attempts"] + 1
            assert dead["last_status_code"] == 503

            receiver.fail_with = None
            assert (await replay(gateway, dead["id"])).status_code == 202
            await sender.drain()
            assert [e["data"]["text"] for e in receiver.events()] == ["hello?"]
            assert (await delivery(gateway, dead["id"])).json()["status"] == "delivered"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_two_senders_share_the_queue_without_sending_an_event_twice(
    database_url: str, tmp_path: Path
) -> None:
    # Two senders with their own connections, as two worker processes would have, drain one
    # backlog at once: every event arrives once, each customer's in the order they wrote.
    async with running_gateway(database_url, tmp_path / "data", run_dispatcher=False) as gateway:
        # A receiver that takes 50 ms per event: otherwise, on SQLite, one sender could send
        # all 20 while the other's first claim waited out SQLite's busy handler (it sleeps
        # between tries), and "both took part" would fail on a busy machine.
        receiver = Receiver(answer_after=0.05)
        with receiving(receiver, free_port()) as url:
            receiver.secret = await set_callback(gateway, url)
            customers = [f"+1650555{n:04d}" for n in range(5)]
            for i in range(4):
                for phone in customers:
                    await gateway.reply(phone, text=f"{phone} #{i}")
            engines = [make_async_engine(gateway.settings.resolved_database_url) for _ in "ab"]
            # Two events in flight each, so that neither can take every lane's head at once.
            few_at_once = gateway.settings.model_copy(update={"callback_concurrency": 2})
            sent_by: list[list[str]] = [[], []]

            def counter(n: int) -> Any:
                async def hook(request: httpx.Request) -> None:
                    sent_by[n].append(request.headers["x-wagate-delivery"])

                return hook

            https = [httpx.AsyncClient(event_hooks={"request": [counter(n)]}) for n in (0, 1)]
            senders = [
                CallbackSender(engine=e, settings=few_at_once, clock=gateway.clock, http=h)
                for e, h in zip(engines, https, strict=True)
            ]
            try:
                await asyncio.gather(*(s.drain() for s in senders))
            finally:
                for sender, engine, http in zip(senders, engines, https, strict=True):
                    await sender.stop()
                    await engine.dispose()
                    await http.aclose()
        assert sent_by[0] and sent_by[1]  # both took part
        assert sorted(sent_by[0] + sent_by[1]) == sorted({*sent_by[0], *sent_by[1]})
        ids = [e["id"] for e in receiver.events()]
        assert len(ids) == len(set(ids)) == 20
        for phone in customers:
            texts = [e["data"]["text"] for e in receiver.events() if e["data"]["phone"] == phone]
            assert texts == [f"{phone} #{i}" for i in range(4)]
        assert await deliveries(gateway, status="pending") == []
