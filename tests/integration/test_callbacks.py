"""Callbacks as a business receives them: the gateway and the sandbox in process, the business's
receiver a real HTTP server on 127.0.0.1 that checks every signature with the README's verifier.
Status events (all steps, in order, whatever order Meta reported them in; failures with Meta's
error), inbound messages and button taps, signatures and replays. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.callback_receiver import Receiver, receiving
from tests.support.harness import Harness, running_gateway
from tests.support.processes import free_port
from wagate.cloud.webhooks import sign as meta_sign
from wagate.sandbox.faults import KNOWN_ERRORS

CUSTOMER = "+16505551234"
LIFECYCLE = ["accepted", "sent", "delivered", "read"]


async def set_callback(gateway: Harness, url: str) -> str:
    response = await gateway.client.put("/v1/callback", json={"url": url}, headers=gateway.auth)
    assert response.status_code == 200, response.text
    assert response.json()["callback_url"] == url
    secret: str = response.json()["callback_secret"]
    return secret


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait until `check()` holds (it may assert); its last failure is the test's."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check() is not False:
                return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        else:
            if time.monotonic() > deadline:
                raise AssertionError(f"{check} did not hold within {timeout} s")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def listening(gateway: Harness) -> AsyncIterator[Receiver]:
    receiver = Receiver()
    with receiving(receiver, free_port()) as url:
        receiver.secret = await set_callback(gateway, url)
        yield receiver


async def deliveries(gateway: Harness, **query: Any) -> list[dict[str, Any]]:
    response = await gateway.client.get("/v1/callbacks", params=query, headers=gateway.auth)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def settled(gateway: Harness, timeout: float = 10.0) -> None:
    """Wait until no delivery is pending (a receiver's 2xx is recorded just after it)."""
    deadline = time.monotonic() + timeout
    while pending := await deliveries(gateway, status="pending"):
        assert time.monotonic() < deadline, pending
        await asyncio.sleep(0.05)


async def test_a_read_message_reports_every_status_in_order_signed(gateway: Harness) -> None:
    async with listening(gateway) as receiver:
        await gateway.reply(CUSTOMER, text="Where is my order?", name="Asha")
        sent = await gateway.send(
            phone=CUSTOMER, message="It ships today", metadata={"order": "4521", "n": 2}
        )
        message_id = sent.json()["id"]
        message = await gateway.wait_status(message_id, "read")
        await eventually(lambda: receiver.statuses(message_id) == LIFECYCLE)

        statuses = receiver.events("message.status")
        for event, status in zip(statuses, LIFECYCLE, strict=True):
            assert event["id"].startswith("evt_") and event["created_at"].endswith("Z")
            assert event["data"] == {
                "message_id": message_id,
                "phone": CUSTOMER,
                "status": status,
                "timestamp": event["data"]["timestamp"],
                "wamid": message["wamid"],
                "error": None,
                "metadata": {"order": "4521", "n": 2},
            }
        # Each step at the time the message's history has for it.
        history = {h["status"]: h["at"] for h in message["history"]}
        assert [e["data"]["timestamp"] for e in statuses] == [history[s] for s in LIFECYCLE]

        [inbound] = receiver.events("message.inbound")
        assert inbound["data"] | {"wamid": None, "timestamp": None, "channel_id": None} == {
            "phone": CUSTOMER,
            "wamid": None,
            "kind": "text",
            "text": "Where is my order?",
            # Meta's message as received, without from, id and timestamp.
            "content": {"type": "text", "text": {"body": "Where is my order?"}},
            "button_id": None,
            "button_payload": None,
            "reply_to": None,
            "reacts_to": None,
            "profile_name": "Asha",
            "channel_id": None,
            "timestamp": None,
        }
        assert inbound["data"]["wamid"].startswith("wamid.")

        # Every request was signed with the account's secret (the receiver refused none) and
        # names its event.
        assert receiver.rejected == []
        for got in receiver.received:
            assert got.headers["content-type"] == "application/json"
            assert got.headers["x-wagate-delivery"] == got.event["id"]
            assert got.headers["x-wagate-event"] == got.event["type"]

        # The log shows what was delivered, newest first, with the exact bodies.
        await settled(gateway)
        log = await deliveries(gateway, status="delivered")
        assert {d["id"]: d["event"] for d in log} == {
            r.event["id"]: r.event for r in receiver.received
        }
        mine = [d["event"]["data"]["status"] for d in log if d["message_id"] == message_id]
        assert mine == LIFECYCLE[::-1]
        for d in log:
            assert (d["status"], d["attempts"], d["last_status_code"]) == ("delivered", 1, 204)
            assert d["delivered_at"] and d["next_attempt_at"] is None


async def test_a_replayed_request_is_refused_by_the_receivers_verifier(gateway: Harness) -> None:
    async with listening(gateway) as receiver:
        await gateway.reply(CUSTOMER, text="hi")
        await eventually(lambda: len(receiver.received) == 1)
        captured = receiver.received[0]
        url = f"http://127.0.0.1:{receiver_port(captured)}/events"
        headers = {
            "Content-Type": "application/json",
            "X-Wagate-Signature": captured.headers["x-wagate-signature"],
        }
        async with httpx.AsyncClient() as client:
            # Five minutes and a second later, the same bytes and signature are stale.
            receiver.skew = 301
            late = await client.post(url, content=captured.raw, headers=headers)
            assert late.status_code == 400
            assert receiver.rejected == [headers["X-Wagate-Signature"]]
            # A forged body under the real signature is refused at any time.
            receiver.skew = 0
            forged = captured.raw.replace(b"hi", b"yo")
            assert (await client.post(url, content=forged, headers=headers)).status_code == 400
            # The genuine request, within the tolerance, is taken.
            assert (
                await client.post(url, content=captured.raw, headers=headers)
            ).status_code == 204


def receiver_port(captured: Any) -> int:
    return int(captured.headers["host"].rsplit(":", 1)[1])


def meta_status(gateway: Harness, wamid: str, *names: str, errors: Any = None) -> bytes:
    ts = str(int(time.time()))
    statuses = [
        {"id": wamid, "status": n, "timestamp": ts, "recipient_id": CUSTOMER.lstrip("+")}
        | ({"errors": errors} if errors and n == "failed" else {})
        for n in names
    ]
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": gateway.identity.display_phone_number,
            "phone_number_id": gateway.identity.phone_number_id,
        },
        "statuses": statuses,
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": gateway.identity.waba_id, "changes": [{"value": value, "field": "messages"}]}
        ],
    }
    return json.dumps(body).encode()


async def post_webhook(gateway: Harness, raw: bytes) -> dict[str, Any]:
    response = await gateway.client.post(
        "/webhooks/whatsapp",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_sign(gateway.identity.app_secret, raw),
        },
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_statuses_meta_batches_out_of_order_arrive_as_each_step_in_order(
    database_url: str, tmp_path: Path
) -> None:
    # The sandbox's own statuses are held back (a minute), so Meta's side is ours to play.
    async with (
        running_gateway(database_url, tmp_path / "data", status_delay=60) as gateway,
        listening(gateway) as receiver,
    ):
        await gateway.reply(CUSTOMER, text="hi")
        sent = await gateway.send(phone=CUSTOMER, message="hello")
        message_id = sent.json()["id"]
        wamid = (await gateway.wait_status(message_id, "accepted"))["wamid"]
        await eventually(lambda: receiver.statuses(message_id) == ["accepted"])

        # read, sent and delivered in one webhook, out of order: three steps, in order.
        moved = await post_webhook(
            gateway, meta_status(gateway, wamid, "read", "sent", "delivered")
        )
        assert moved["statuses"] == 3
        await eventually(lambda: receiver.statuses(message_id) == LIFECYCLE)
        # Late and repeated reports move nothing, so they make no event.
        again = await post_webhook(gateway, meta_status(gateway, wamid, "delivered", "read"))
        assert again["statuses"] == 0
        await asyncio.sleep(0.6)  # a few of the sender's polls
        assert receiver.statuses(message_id) == LIFECYCLE
        log = await deliveries(gateway)
        assert len([d for d in log if d["message_id"] == message_id]) == 4


async def test_a_failed_message_reports_metas_error(database_url: str, tmp_path: Path) -> None:
    async with (
        running_gateway(database_url, tmp_path / "data") as gateway,
        listening(gateway) as receiver,
    ):
        refused, undeliverable = "+16505550001", "+16505550002"
        for phone, code, mode in ((refused, 131051, "response"), (undeliverable, 131026, "status")):
            fault = {"code": code, "mode": mode, "phone": phone, "count": 2}
            assert (await gateway.client.post("/sandbox/faults", json=fault)).status_code == 201
            await gateway.reply(phone, text="hi")
        ids = {}
        for phone in (refused, undeliverable):
            sent = await gateway.send(phone=phone, message="hello", metadata={"to": phone})
            ids[phone] = sent.json()["id"]

        # Refused at the send: failed at once, never accepted.
        await eventually(lambda: receiver.statuses(ids[refused]) == ["failed"])
        # Accepted, then Meta's failed status.
        await eventually(lambda: receiver.statuses(ids[undeliverable]) == ["accepted", "failed"])
        for phone, code in ((refused, 131051), (undeliverable, 131026)):
            message = await gateway.message(ids[phone])
            [failed] = [
                e
                for e in receiver.events("message.status")
                if e["data"]["message_id"] == ids[phone] and e["data"]["status"] == "failed"
            ]
            known = KNOWN_ERRORS[code]
            assert (
                failed["data"]["error"]
                == message["error"]
                == {
                    "code": message["error"]["code"],
                    "meta_code": code,
                    "title": known.title,
                    "details": known.details,
                }
            )
            assert failed["data"]["metadata"] == {"to": phone}
            if code == 131026:
                assert message["error"]["code"] == "undeliverable"


async def test_customer_messages_and_button_taps(gateway: Harness) -> None:
    async with listening(gateway) as receiver:
        await gateway.reply(CUSTOMER, text="hi", name="Asha")
        sent = await gateway.send(
            phone=CUSTOMER,
            message="Is 10:00 tomorrow good?",
            buttons=[{"id": "slot-yes", "title": "Yes"}, {"id": "slot-no", "title": "No"}],
        )
        message_id = sent.json()["id"]
        await gateway.wait_status(message_id, "accepted")
        await gateway.reply(CUSTOMER, button_id="slot-yes", name="Asha")
        await gateway.reply(CUSTOMER, payload="track-4521", button_text="Track it")
        await eventually(lambda: len(receiver.events("message.inbound")) == 3)

        text, tap, quick_reply = (e["data"] for e in receiver.events("message.inbound"))
        assert (text["kind"], text["text"], text["reply_to"]) == ("text", "hi", None)
        # The same kind as the conversation API shows for the tap (issue 15.7).
        assert tap["kind"] == "button_reply"
        conversation = (
            await gateway.client.get(f"/v1/conversations/{CUSTOMER}", headers=gateway.auth)
        ).json()
        kinds = {m["wamid"]: m.get("kind") for m in conversation["messages"]}
        assert kinds[tap["wamid"]] == "button_reply"
        assert kinds[quick_reply["wamid"]] == quick_reply["kind"] == "button"
        assert (tap["button_id"], tap["text"], tap["button_payload"]) == ("slot-yes", "Yes", None)
        assert tap["reply_to"] == message_id  # the customer tapped our message
        assert tap["profile_name"] == "Asha" and tap["phone"] == CUSTOMER
        assert quick_reply["kind"] == "button"
        assert (quick_reply["button_payload"], quick_reply["text"]) == ("track-4521", "Track it")
        assert quick_reply["button_id"] is None
        assert len({text["wamid"], tap["wamid"], quick_reply["wamid"]}) == 3


async def test_no_url_no_events_and_a_cleared_url_stops_them(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="before any URL")
    assert await deliveries(gateway) == []
    async with listening(gateway) as receiver:
        await gateway.reply(CUSTOMER, text="with a URL")
        await eventually(lambda: len(receiver.received) == 1)
        cleared = await gateway.client.delete("/v1/callback", headers=gateway.auth)
        assert cleared.json()["callback_url"] is None
        assert cleared.json()["callback_secret"] == receiver.secret  # kept for next time
        await gateway.reply(CUSTOMER, text="after clearing")
        await asyncio.sleep(0.6)
        assert [e["data"]["text"] for e in receiver.events()] == ["with a URL"]
        assert len(await deliveries(gateway)) == 1
