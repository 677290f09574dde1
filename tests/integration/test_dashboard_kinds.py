"""The conversation page with every kind, stored for real: sent from its compose box (through
the same parsers and accept path as the API) and received as signed webhooks, then drawn as
WhatsApp draws them, reactions on the bubbles they react to."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx

from tests.support.dashboard import add_user, client_for, sign_in
from tests.support.harness import Harness
from tests.support.kind_fixtures import INBOUND, Page
from wagate.cloud.webhooks import sign

CUSTOMER = "+14155552671"
DIGITS = CUSTOMER[1:]
ME = "me@example.com"


async def customer_sends(gateway: Harness, content: dict[str, Any], wamid: str, ts: int) -> None:
    """The customer's message of any kind, as Meta's signed webhook brings it."""
    message = {"from": DIGITS, "id": wamid, "timestamp": str(ts), **content}
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": gateway.identity.display_phone_number,
            "phone_number_id": gateway.identity.phone_number_id,
        },
        "messages": [message],
    }
    if content["type"] != "system":
        value["contacts"] = [{"profile": {"name": "Sheena"}, "wa_id": DIGITS}]
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": gateway.identity.waba_id, "changes": [{"value": value, "field": "messages"}]}
        ],
    }
    raw = json.dumps(body).encode()
    answer = await gateway.client.post(
        "/webhooks/whatsapp",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(gateway.identity.app_secret, raw),
        },
    )
    assert answer.status_code == 200, answer.text


async def compose(
    browser: httpx.AsyncClient, csrf: str, kind: str, **inputs: str
) -> httpx.Response:
    form = {"csrf_token": csrf, "kind": kind, "idempotency_key": f"test-{kind}-{len(inputs)}"}
    return await browser.post(f"/conversations/{DIGITS}/send-kind", data=form | inputs)


def sent_id(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    found = re.search(r"sent=(msg_\w+)", answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


async def wamid_of(gateway: Harness, message_id: str) -> str:
    for _ in range(500):
        data = await gateway.message(message_id)
        if data.get("wamid"):
            return str(data["wamid"])
        await asyncio.sleep(0.02)
    raise AssertionError(f"{message_id} was never sent")


async def test_every_kind_composed_received_and_drawn(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    hello = await gateway.reply(CUSTOMER, text="hello")
    async with client_for(gateway.app) as browser:
        csrf = await sign_in(browser, ME)
        listed = sent_id(
            await compose(
                browser,
                csrf,
                "list",
                message="How fast do you want it?",
                button="Choose speed",
                sections=(
                    "# Standard\nstd | Ground | 3 to 5 days\n# Fast\nexpress | Express | Next day"
                ),
                header="Shipping",
            )
        )
        sent_id(
            await compose(
                browser, csrf, "cta", message="Your receipt", button="See order",
                url="https://shop.example/o/4521",
            )
        )  # fmt: skip
        sent_id(
            await compose(
                browser, csrf, "location", latitude="51.50135", longitude="-0.14189",
                name="Buckingham Palace", address="London SW1A 1AA",
            )
        )  # fmt: skip
        sent_id(await compose(browser, csrf, "location_request", message="Where to?"))
        sent_id(
            await compose(
                browser, csrf, "contacts", contact_name="Lucía Gómez",
                contact_phone="+19835552319", contact_email="lucia@shop.example",
            )
        )  # fmt: skip
        # A reaction on the customer's bubble, from the bubble's menu.
        reacted = sent_id(
            await compose(browser, csrf, "reaction", message_id=hello["wamid"], emoji="👍")
        )
        await wamid_of(gateway, reacted)  # handed to Meta: it is drawn on its bubble

        list_wamid = await wamid_of(gateway, listed)
        tapped = {
            **INBOUND["list_reply"],
            "context": {"from": gateway.identity.display_phone_number, "id": list_wamid},
        }
        kinds = [
            ("wamid.in-list", tapped),
            ("wamid.in-location", INBOUND["location"]),
            ("wamid.in-contacts", INBOUND["contacts"]),
            ("wamid.in-order", INBOUND["order"]),
            ("wamid.in-unsupported", INBOUND["unsupported"]),
            ("wamid.in-sticker", INBOUND["sticker"]),
            (
                "wamid.in-reaction",
                {"type": "reaction", "reaction": {"message_id": list_wamid, "emoji": "❤️"}},
            ),
        ]
        now = int(gateway.clock.now().timestamp())
        for n, (wamid, content) in enumerate(kinds):
            await customer_sends(gateway, content, wamid, now + n)

        page = await browser.get(f"/conversations/{DIGITS}")
        assert page.status_code == 200
        drawn = Page(page.text)
        shown = [a["data-kind"] for t, a in drawn.elements if "data-kind" in a and t == "div"]
        for kind in ("list", "cta", "location", "location_request", "contacts", "tapped", "order",
                     "unsupported", "sticker"):  # fmt: skip
            assert kind in shown, (kind, shown)
        assert "reaction" not in shown, text_of_reactions(page.text)  # on their bubbles
        text = drawn.text
        assert "Choose speed" in text and "Express Next day" in text
        assert "Chose from the list Express" in text
        assert "Buckingham Palace" in text and "Philz Coffee" in text
        assert "Lucía Gómez" in text and "Barbara J. Johnson" in text
        assert "Total 85.50 USD" in text
        assert drawn.all("a", href="https://shop.example/o/4521")
        reactions = [
            a.get("title")
            for t, a in drawn.elements
            if t == "span" and "wa-reaction" in a.get("class", "")
        ]
        assert sorted(reactions) == ["Their reaction", "Your reaction"]
        assert "👍" in text and "❤️" in text
        # Nothing on the page is fetched from another site.
        assert all(src.startswith(("/media/", "/static/")) for src in drawn.loads())
        # The message log names each kind beside its text.
        log = Page((await browser.get("/messages")).text).text
        for shown in ("List How fast do you want it?", "Link button Your receipt",
                      "Location Buckingham Palace", "Asks for location Where to?",
                      "Contact card Lucía Gómez", "Reaction 👍"):  # fmt: skip
            assert shown in log, (shown, log)


async def test_a_wrong_list_is_refused_beside_its_input_and_nothing_is_sent(
    gateway: Harness,
) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    await gateway.reply(CUSTOMER, text="hello")
    async with client_for(gateway.app) as browser:
        csrf = await sign_in(browser, ME)
        answer = await compose(
            browser,
            csrf,
            "list",
            message="Pick one",
            button="A button text far too long for WhatsApp",
            sections="a | A\na | A again",
        )
        assert answer.status_code == 422
        page = Page(answer.text)
        errors = {
            a.get("id") for t, a in page.elements if t == "p" and a.get("class") == "field-error"
        }
        assert {"f-list-button-error", "f-list-sections-error"} <= errors
        # The list form is open again with what was typed.
        assert "A button text far too long for WhatsApp" in answer.text
        assert page.all("details", name="compose-kind", class_="compose-kind", open="")
        missing_url = await compose(browser, csrf, "cta", message="x", button="Go", url="")
        assert missing_url.status_code == 422 and "f-cta-url-error" in missing_url.text
        wrong_target = await compose(
            browser, csrf, "reaction", message_id="msg_nothing", emoji="👍"
        )
        assert wrong_target.status_code == 422
        forged = await compose(browser, "not-the-token", "location_request", message="Where?")
        assert forged.status_code == 403
    listed = await gateway.client.get("/v1/messages", headers=gateway.auth)
    assert listed.json()["data"] == []


def text_of_reactions(html: str) -> str:
    return " | ".join(re.findall(r'data-kind="reaction".{0,1500}', html, re.S))


async def test_a_read_receipt_is_said_in_words_and_not_a_bubble(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    await gateway.reply(CUSTOMER, text="hello")
    answer = await gateway.client.post(
        f"/v1/conversations/{CUSTOMER}/read", json={"typing": True}, headers=gateway.auth
    )
    assert answer.status_code == 202, answer.text
    receipt = answer.json()["id"]
    async with client_for(gateway.app) as browser:
        await sign_in(browser, ME)
        own = Page((await browser.get(f"/messages/{receipt}")).text)
        assert "Read receipt" in own.text
        assert "blue ticks on their phone) and shows them that you are typing" in own.text
        thread = Page((await browser.get(f"/conversations/{DIGITS}")).text)
        assert "Read receipt" not in thread.text
        kinds = [a["data-kind"] for t, a in thread.elements if "data-kind" in a and t == "div"]
        assert kinds == ["text"]  # only the customer's hello
