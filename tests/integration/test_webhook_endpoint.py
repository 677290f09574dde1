"""`/webhooks/whatsapp` with Meta's real payload shapes, signed and not."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from tests.support.harness import Harness
from wagate.cloud.webhook_guard import MAX_CANDIDATE_IDS
from wagate.cloud.webhooks import sign
from wagate.store import accounts as account_store
from wagate.store.db import write_tx
from wagate.store.tables import (
    inbound_messages,
    message_events,
    messages,
    pending_statuses,
    webhook_events,
)

CUSTOMER_WA = "16505551234"
CUSTOMER = "+" + CUSTOMER_WA


def envelope(gateway: Harness, *values: dict[str, Any], entries: int = 1) -> dict[str, Any]:
    meta = {
        "display_phone_number": gateway.identity.display_phone_number,
        "phone_number_id": gateway.identity.phone_number_id,
    }
    changes = [
        {"value": {"messaging_product": "whatsapp", "metadata": meta, **v}, "field": "messages"}
        for v in values
    ]
    per = max(1, len(changes) // entries)
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": gateway.identity.waba_id, "changes": changes[i : i + per]}
            for i in range(0, len(changes), per)
        ],
    }


def text_message(wamid: str, ts: int, body: str = "hi", wa_id: str = CUSTOMER_WA) -> dict[str, Any]:
    return {
        "contacts": [{"profile": {"name": "Sheena"}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": wamid,
                "timestamp": str(ts),
                "type": "text",
                "text": {"body": body},
            }
        ],
    }


def status(
    wamid: str, name: str, ts: int, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": name,
        "timestamp": str(ts),
        "recipient_id": CUSTOMER_WA,
    }
    if errors:
        item["errors"] = errors
    return {"statuses": [item]}


async def post(gateway: Harness, payload: dict[str, Any], secret: str | None = None) -> Any:
    raw = json.dumps(payload).encode()
    signature = sign(secret or gateway.identity.app_secret, raw)
    return await gateway.client.post(
        "/webhooks/whatsapp",
        content=raw,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
    )


async def count(gateway: Harness, table: Any) -> int:
    async with gateway.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def window(gateway: Harness, phone: str = CUSTOMER) -> dict[str, Any]:
    response = await gateway.client.get(f"/v1/conversations/{phone}", headers=gateway.auth)
    data: dict[str, Any] = response.json()
    return data


async def test_verification_handshake(gateway: Harness) -> None:
    ok = await gateway.client.get(
        "/webhooks/whatsapp",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": gateway.identity.verify_token,
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status_code == 200
    assert ok.text == "1158201444"
    wrong = await gateway.client.get(
        "/webhooks/whatsapp",
        params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
    )
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "verification_failed"
    missing = await gateway.client.get("/webhooks/whatsapp")
    assert missing.status_code == 403


async def test_unsigned_or_badly_signed_events_are_rejected_and_not_stored(
    gateway: Harness,
) -> None:
    payload = envelope(gateway, text_message("wamid.A", int(time.time())))
    raw = json.dumps(payload).encode()
    no_header = await gateway.client.post(
        "/webhooks/whatsapp", content=raw, headers={"Content-Type": "application/json"}
    )
    assert no_header.status_code == 401
    assert no_header.json()["error"]["code"] == "invalid_signature"
    wrong_secret = await post(gateway, payload, secret="not-the-app-secret")
    assert wrong_secret.status_code == 401
    tampered = await gateway.client.post(
        "/webhooks/whatsapp",
        content=raw.replace(b"wamid.A", b"wamid.B"),
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(gateway.identity.app_secret, raw),
        },
    )
    assert tampered.status_code == 401
    assert await count(gateway, webhook_events) == 0
    assert await count(gateway, inbound_messages) == 0
    assert (await window(gateway))["window_open"] is False


async def test_signed_garbage_is_a_clear_400(gateway: Harness) -> None:
    raw = b"not json"
    headers = {"X-Hub-Signature-256": sign(gateway.identity.app_secret, raw)}
    response = await gateway.client.post(await gateway.webhook_path(), content=raw, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_body"
    # The shared path checks signatures only against the channels a body names (its cost
    # must not grow with the channels): a body naming none cannot be told from a forgery.
    shared = await gateway.client.post("/webhooks/whatsapp", content=raw, headers=headers)
    assert shared.status_code == 401
    assert shared.json()["error"]["code"] == "invalid_signature"


async def test_an_event_naming_only_its_waba_is_checked_against_that_wabas_secret(
    gateway: Harness,
) -> None:
    """Meta's account-level events (a template's review, say) name no number, only the WABA in
    `entry[].id`: on the shared path the signature is checked against that WABA's channels."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": gateway.identity.waba_id,
                "time": int(time.time()),
                "changes": [
                    {
                        "field": "message_template_status_update",
                        "value": {"event": "APPROVED", "message_template_name": "order_update"},
                    }
                ],
            }
        ],
    }
    accepted = await post(gateway, payload)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"success": True, "inbound": 0, "statuses": 0}
    assert await count(gateway, webhook_events) == 1
    refused = await post(gateway, payload, secret="another-apps-secret")
    assert refused.status_code == 401
    other_waba = {**payload, "entry": [{**payload["entry"][0], "id": "999999999999999"}]}
    unknown = await post(gateway, other_waba)
    assert unknown.status_code == 401
    assert await count(gateway, webhook_events) == 1


async def test_a_batch_is_applied_whole_and_duplicates_once(gateway: Harness) -> None:
    now = int(time.time())
    payload = envelope(
        gateway,
        text_message("wamid.1", now - 10, "first"),
        text_message("wamid.2", now - 5, "second", wa_id="919876543210"),
        {
            "contacts": [{"profile": {"name": "Ravi"}, "wa_id": "447911123456"}],
            "messages": [
                {
                    "from": "447911123456",
                    "id": "wamid.3",
                    "timestamp": str(now),
                    "type": "button",
                    "button": {"payload": "track-4521", "text": "Track order"},
                    "context": {"from": "15550000001", "id": "wamid.original"},
                },
                {
                    "from": "447911123456",
                    "id": "wamid.4",
                    "timestamp": str(now),
                    "type": "image",
                    "image": {"id": "media1", "mime_type": "image/jpeg", "caption": "look"},
                },
            ],
        },
        entries=2,
    )
    first = await post(gateway, payload)
    assert first.status_code == 200, first.text
    again = await post(gateway, payload)  # Meta retries
    assert again.status_code == 200
    assert await count(gateway, inbound_messages) == 4
    assert await count(gateway, webhook_events) == 2  # every POST is kept raw
    for phone in (CUSTOMER, "+919876543210", "+447911123456"):
        assert (await window(gateway, phone))["window_open"] is True
    thread = (await window(gateway, "+447911123456"))["messages"]
    kinds = {m["kind"]: m for m in thread}
    assert kinds["button"]["button_payload"] == "track-4521"
    assert kinds["image"]["text"] == "look"


async def test_statuses_only_move_forward_and_are_recorded_once(gateway: Harness) -> None:
    await gateway.reply(CUSTOMER, text="hi")
    # Keep the sandbox's own statuses out of the way: run without them by reading what we get.
    sent = await gateway.send(phone=CUSTOMER, message="hello")
    message = await gateway.wait_status(sent.json()["id"], "read")
    wamid = message["wamid"]
    events_before = await count(gateway, message_events)
    now = int(time.time())
    # Late, repeated, out-of-order reports change nothing.
    for name in ("sent", "delivered", "read", "sent"):
        assert (await post(gateway, envelope(gateway, status(wamid, name, now)))).status_code == 200
    assert await count(gateway, message_events) == events_before
    after = await gateway.message(message["id"])
    assert after["status"] == "read"
    # A failure after read does not move it back either.
    failed = status(wamid, "failed", now, [{"code": 131026, "title": "Message undeliverable"}])
    await post(gateway, envelope(gateway, failed))
    assert (await gateway.message(message["id"]))["status"] == "read"


async def test_a_status_that_beats_our_own_record_is_applied_later(gateway: Harness) -> None:
    # Meta's webhook for a wamid we have not recorded yet is parked, then applied.
    now = int(time.time())
    errors = [
        {
            "code": 131049,
            "title": "This message was not delivered to maintain healthy ecosystem engagement.",
            "message": "This message was not delivered to maintain healthy ecosystem engagement.",
            "error_data": {
                "details": "In order to maintain a healthy ecosystem engagement, "
                "the message failed to be delivered."
            },
        }
    ]
    await gateway.reply(CUSTOMER, text="hi")
    from wagate.store import outbox as outbox_store

    await gateway.dispatcher.stop()
    sent = await gateway.send(phone=CUSTOMER, message="hello")
    message_id = sent.json()["id"]
    await post(gateway, envelope(gateway, status("wamid.early", "failed", now, errors)))
    async with write_tx(gateway.engine) as conn:
        from datetime import timedelta

        claims = await outbox_store.claim(
            conn, owner="test", now=gateway.clock.now(), lease=timedelta(seconds=30), limit=10
        )
        assert [c.message_id for c in claims] == [message_id]
        recorded, changes = await outbox_store.record_outcomes(
            conn,
            owner="test",
            outcomes=[outbox_store.Sent(message_id, "wamid.early")],
            now=gateway.clock.now(),
        )
        assert recorded == {message_id}
        assert [(c.message_id, c.status.value) for c in changes] == [(message_id, "failed")]
    message = await gateway.message(message_id)
    assert message["status"] == "failed"
    assert message["error"]["meta_code"] == 131049
    assert "ecosystem" in message["error"]["details"]
    assert [h["status"] for h in message["history"]] == ["queued", "accepted", "failed"]


async def test_a_number_past_the_scanned_ones_still_gets_its_message(gateway: Harness) -> None:
    """The signature is checked against the channels of the first numbers the body names; a
    channel of the same Meta app (same app secret) named later in the batch still gets its
    customer's message, and a number with no channel changes nothing."""
    account_id, channel = await gateway.account_id(), await gateway.sandbox_channel()
    async with write_tx(gateway.engine) as conn:
        later = await account_store.add_channel(
            conn,
            account_id=account_id,
            phone_number_id="109000000000099",
            waba_id=gateway.identity.waba_id,
            access_token="EAAG-second-number",
            app_secret=gateway.identity.app_secret,
            verify_token="second-verify",
            graph_url="http://graph.invalid",
            mps=80,
            now=datetime.now(UTC),
            display_phone_number="15550009999",
        )
    now = int(time.time())
    ours = envelope(gateway, text_message("wamid.ours", now - 3, "to the sandbox number"))
    nobody = [
        {
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "1555", "phone_number_id": f"10800000000{i}"},
                **text_message(f"wamid.nobody{i}", now - 2, wa_id="14155550100"),
            },
            "field": "messages",
        }
        for i in range(MAX_CANDIDATE_IDS - 1)
    ]
    theirs = {
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": "15550009999",
                "phone_number_id": "109000000000099",
            },
            **text_message("wamid.later", now - 1, "to the second number", wa_id="447700900123"),
        },
        "field": "messages",
    }
    ours["entry"][0]["changes"] += [*nobody, theirs]
    response = await post(gateway, ours)
    assert response.status_code == 200, response.text
    assert response.json()["inbound"] == 2
    async with gateway.engine.connect() as conn:
        stored = (
            await conn.execute(select(inbound_messages.c.wamid, inbound_messages.c.channel_id))
        ).all()
    assert sorted(stored) == sorted([("wamid.ours", channel.id), ("wamid.later", later.id)])


async def test_a_full_batch_of_statuses_moves_each_message_once(gateway: Harness) -> None:
    """Meta's biggest batch (hundreds of statuses, some repeated, some for wamids not recorded
    yet) moves every known message once, records each step once, parks the rest; the same
    batch again changes nothing."""
    channel = await gateway.sandbox_channel()
    now = datetime.now(UTC)
    known = 700
    async with write_tx(gateway.engine) as conn:
        await conn.execute(
            messages.insert(),
            [
                {
                    "id": f"msg_bulk{i:05d}",
                    "account_id": channel.account_id,
                    "channel_id": channel.id,
                    "phone": CUSTOMER,
                    "type": "text",
                    "content": {"text": f"bulk {i}"},
                    "metadata": {},
                    "status": "accepted",
                    "wamid": f"wamid.bulk{i:05d}",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(known)
            ],
        )
    ts = int(time.time())
    items = [status(f"wamid.bulk{i:05d}", "delivered", ts)["statuses"][0] for i in range(known)]
    items += items[:50]  # Meta repeats itself
    items += [status(f"wamid.later{i}", "delivered", ts)["statuses"][0] for i in range(20)]
    payload = envelope(gateway, {"statuses": items})
    first = await post(gateway, payload)
    assert first.status_code == 200, first.text
    assert first.json()["statuses"] == known
    async with gateway.engine.connect() as conn:
        moved = await conn.execute(
            select(messages.c.status, func.count())
            .where(messages.c.id.like("msg_bulk%"))
            .group_by(messages.c.status)
        )
        assert {row[0]: row[1] for row in moved} == {"delivered": known}
        steps = select(func.count()).select_from(message_events)
        assert (
            await conn.execute(steps.where(message_events.c.status == "delivered"))
        ).scalar_one() == known
        assert (
            await conn.execute(select(func.count()).select_from(pending_statuses))
        ).scalar_one() == 20
    again = await post(gateway, payload)
    assert again.status_code == 200
    assert again.json()["statuses"] == 0
    assert await count(gateway, message_events) == known
    assert await count(gateway, pending_statuses) == 20
