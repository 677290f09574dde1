"""The sandbox phone with every kind: it draws what the business sent (a list whose rows open
from its button, a link button, a location, a request for one), and the customer taps a list
row, shares a location and sends a photo, each reaching the gateway as Meta's webhook."""

from __future__ import annotations

import re
from typing import Any

from tests.support import media_samples as samples
from tests.support.dashboard import add_user, client_for, sign_in
from tests.support.harness import Harness
from tests.support.kind_fixtures import Page

CUSTOMER = "+14155552671"
DIGITS = CUSTOMER[1:]
ME = "me@example.com"


async def business_sends(gateway: Harness, path: str, **body: Any) -> str:
    answer = await gateway.client.post(
        f"/v1/messages/{path}", json={"phone": CUSTOMER, **body}, headers=gateway.auth
    )
    assert answer.status_code == 202, answer.text
    message_id = str(answer.json()["id"])
    return str((await gateway.wait_status(message_id, "delivered"))["wamid"])


async def inbound(gateway: Harness) -> list[dict[str, Any]]:
    answer = await gateway.client.get(f"/v1/conversations/{CUSTOMER}", headers=gateway.auth)
    return [m for m in answer.json()["messages"] if m["direction"] == "inbound"]


async def test_the_customer_taps_a_row_shares_a_location_and_sends_a_photo(
    gateway: Harness,
) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    await gateway.reply(CUSTOMER, text="hi")
    list_wamid = await business_sends(
        gateway,
        "list",
        message="How fast?",
        button="Choose speed",
        sections=[
            {"title": "Standard", "rows": [{"id": "std", "title": "Ground"}]},
            {"title": "Fast", "rows": [{"id": "express", "title": "Express",
                                        "description": "Next day"}]},
        ],
    )  # fmt: skip
    await business_sends(gateway, "cta", message="Receipt", button="See order",
                         url="https://shop.example/o/1")  # fmt: skip
    ask_wamid = await business_sends(gateway, "location-request", message="Where to?")
    async with client_for(gateway.app) as browser:
        csrf = await sign_in(browser, ME)
        phone = Page((await browser.get(f"/sandbox-phone/{DIGITS}")).text)
        assert "Choose speed" in phone.text and "Express Next day" in phone.text
        assert phone.all("a", href="https://shop.example/o/1")
        rows = [a["value"] for a in phone.all("input", name="row_id")]
        assert rows == ["std", "express"]
        assert phone.all("input", name="latitude")  # the request's "Send location"

        tap = await browser.post(
            f"/sandbox-phone/{DIGITS}/reply",
            data={"csrf_token": csrf, "row_id": "express", "row_title": "Express",
                  "row_description": "Next day", "context": list_wamid},
        )  # fmt: skip
        assert tap.status_code == 303, tap.text
        shared = await browser.post(
            f"/sandbox-phone/{DIGITS}/reply",
            data={"csrf_token": csrf, "latitude": "48.8584", "longitude": "2.2945",
                  "location_name": "Eiffel Tower", "context": ask_wamid},
        )  # fmt: skip
        assert shared.status_code == 303, shared.text
        photo = samples.png(5, 5)
        sent = await browser.post(
            f"/sandbox-phone/{DIGITS}/media",
            data={"csrf_token": csrf, "kind": "image", "caption": "my balcony"},
            files={"file": ("balcony.png", photo, "image/png")},
        )
        assert sent.status_code == 303, sent.text
        forged = await browser.post(
            f"/sandbox-phone/{DIGITS}/media",
            data={"kind": "image"},
            files={"file": ("x.png", photo, "image/png")},
        )
        assert forged.status_code == 403

        kinds = {m["kind"]: m for m in await inbound(gateway)}
        assert kinds["list_reply"]["button_id"] == "express"
        assert kinds["list_reply"]["context_wamid"] == list_wamid
        assert kinds["location"]["content"]["location"]["name"] == "Eiffel Tower"
        assert "image" in kinds
        await gateway.dispatcher.downloads.drain()

        # The business sees all three; the customer's phone shows them on its side.
        page = Page((await browser.get(f"/conversations/{DIGITS}")).text)
        assert "Chose from the list Express" in page.text
        assert "Eiffel Tower" in page.text and "48.85840° N" in page.text
        [img] = page.all("img")
        assert (await browser.get(img["src"])).content == photo
        phone = Page((await browser.get(f"/sandbox-phone/{DIGITS}/thread")).text)
        mine = [a["data-kind"] for t, a in phone.elements
                if t == "div" and re.search(r"\bmine\b", a.get("class", ""))]  # fmt: skip
        assert {"tapped", "location", "image"} <= set(mine), mine
        assert [i["src"] for i in phone.all("img")] == [img["src"]]
