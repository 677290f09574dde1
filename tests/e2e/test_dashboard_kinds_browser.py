"""Every message kind in headless Chromium against a real `wagate serve`: a conversation with
each kind both ways drawn as WhatsApp draws it (photos and players from the gateway itself,
under its CSP, nothing fetched from elsewhere), a photo and a list composed in the browser, and
a list row tapped on the sandbox phone.

With WAGATE_SCREENSHOTS=DIR, the conversation and the phone are saved there
(`conversation-kinds.png`, `conversation-kinds-phone.png`, `sandbox-phone-kinds.png`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_dashboard_browser import (
    DESKTOP,
    PHONE,
    Gateway,
    _sandbox_token,
    browser,
    gateway,
    shot,
    sign_in,
    watch_errors,
)
from tests.support import media_samples as samples
from tests.support.processes import cli_json

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = pytest.mark.slow
__all__ = ["browser", "gateway"]  # the fixtures, shared with the dashboard's other browser test

CUSTOMER = "+14155552673"


def picture(width: int, height: int, tint: tuple[int, int, int]) -> bytes:
    """A PNG with a soft gradient of `tint` (more telling in screenshots than grey)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(
        b"\x00"
        + b"".join(
            bytes(min(255, c * (60 + 140 * x // width + 55 * y // height) // 255) for c in tint)
            for x in range(width)
        )
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


DIGITS = CUSTOMER[1:]


class Api:
    def __init__(self, gateway: Gateway) -> None:
        env = gateway.server.env
        token = cli_json(env, "tokens", "create", "--account", "sandbox", "--name", "kinds")
        self.http = httpx.Client(base_url=gateway.url, timeout=15)
        self.auth = {"Authorization": f"Bearer {token['token']}"}
        self.sandbox = {"Authorization": "Bearer " + _sandbox_token(env)}

    def send(self, path: str, **body: Any) -> str:
        answer = self.http.post(
            f"/v1/messages{path}", json={"phone": CUSTOMER, **body}, headers=self.auth
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    def wamid(self, message_id: str) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = self.http.get(f"/v1/messages/{message_id}", headers=self.auth).json()
            if found.get("wamid") and found["status"] in ("delivered", "read"):
                return str(found["wamid"])
            time.sleep(0.1)
        raise AssertionError(f"{message_id} was not delivered: {found}")

    def upload(self, name: str, content: bytes) -> str:
        answer = self.http.post("/v1/media", files={"file": (name, content)}, headers=self.auth)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def customer(self, **body: Any) -> str:
        answer = self.http.post(
            "/sandbox/customer/reply", json={"phone": CUSTOMER, **body}, headers=self.sandbox
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["wamid"])

    def customer_file(self, kind: str, name: str, content: bytes, **fields: str) -> str:
        answer = self.http.post(
            "/sandbox/customer/media",
            data={"phone": CUSTOMER, "kind": kind, **fields},
            files={"file": (name, content)},
            headers=self.sandbox,
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["wamid"])


@pytest.fixture(scope="module")
def every_kind(gateway: Gateway) -> Iterator[dict[str, str]]:
    """A conversation holding each kind both ways, and a reaction from each side."""
    api = Api(gateway)
    hello = api.customer(text="Hi! Can I see the sofa?")
    photo = api.upload("sofa.png", picture(240, 160, (70, 160, 110)))
    ids = {
        "photo": api.send("/media", media_type="image", media_id=photo,
                          caption="The *Oslo* sofa, in green"),
        "buttons": api.send("", message="Shall I reserve it?", header="Reserve",
                            buttons=[{"id": "yes", "title": "Yes please"},
                                     {"id": "no", "title": "Not now"}]),
        "list": api.send("/list", message="How fast do you want it?", button="Choose speed",
                         header="Delivery", footer="Prices include tax",
                         sections=[{"title": "Standard", "rows": [
                             {"id": "std", "title": "Ground", "description": "3 to 5 days"}]},
                                   {"title": "Fast", "rows": [
                             {"id": "express", "title": "Express", "description": "Next day"}]}]),
        "cta": api.send("/cta", message="Your receipt is ready.", button="See order",
                        url="https://shop.example/orders/4521"),
        "document": api.send("/media", media_type="document",
                             media_id=api.upload("Invoice 4521.pdf", samples.pdf(40_000)),
                             filename="Invoice 4521.pdf", caption="Your invoice"),
        "location": api.send("/location", latitude=51.50135, longitude=-0.14189,
                             name="Shop & Co showroom", address="1 Palace St, London"),
        "ask": api.send("/location-request", message="Where should we deliver?"),
        "contacts": api.send("/contacts", contacts=[{
            "name": {"formatted_name": "Lucía Gómez"}, "org": {"company": "Shop & Co"},
            "phones": [{"phone": "+1 983 555 2319", "type": "WORK"}],
            "emails": [{"email": "lucia@shop.example"}]}]),
    }  # fmt: skip
    wamids = {name: api.wamid(message_id) for name, message_id in ids.items()}
    api.customer(button_id="express", button_title="Express", context=wamids["list"])
    api.customer(location={"latitude": 48.8584, "longitude": 2.2945, "name": "Eiffel Tower",
                           "address": "Champ de Mars, Paris"}, context=wamids["ask"])  # fmt: skip
    api.customer(reaction={"emoji": "❤️", "message_id": wamids["photo"]})
    theirs = api.customer_file("image", "balcony.png", picture(150, 200, (120, 150, 230)),
                               caption="Where it would go")  # fmt: skip
    api.customer_file("voice", "note.ogg", samples.ogg_opus())
    api.customer(contacts=[{"name": {"formatted_name": "Sam Rivera"},
                            "phones": [{"phone": "+14155550199"}]}])  # fmt: skip
    api.customer(
        order={
            "catalog_id": "194836987003835",
            "product_items": [
                {
                    "product_retailer_id": "oslo-green",
                    "quantity": 1,
                    "item_price": 899,
                    "currency": "EUR",
                },
                {
                    "product_retailer_id": "cushion",
                    "quantity": 2,
                    "item_price": 25,
                    "currency": "EUR",
                },
            ],
        }
    )
    api.customer(unsupported=True)
    api.customer(system={"body": "The customer changed their number to +14155552674"})
    api.wamid(api.send("/reaction", message_id=theirs, emoji="👍"))
    api.wamid(api.send("/reaction", message_id=hello, emoji="🙏"))
    yield {"photo": photo}
    api.http.close()


def window_scroll(page: Page) -> int:
    return int(page.evaluate("window.scrollY"))


def gateway_only(page: Page, gateway: Gateway) -> list[str]:
    """Every request the page makes that does not go to the gateway."""
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda r: elsewhere.append(r.url) if not r.url.startswith(gateway.url) else None,
    )
    return elsewhere


def test_every_kind_is_drawn_in_the_conversation(
    browser: Browser, gateway: Gateway, every_kind: dict[str, str]
) -> None:
    for viewport, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
        context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        page = context.new_page()
        errors = watch_errors(page)
        elsewhere = gateway_only(page, gateway)
        sign_in(page, gateway)
        page.goto(f"{gateway.url}/conversations/{DIGITS}")
        thread = page.locator("#thread")
        expect(thread.locator(".bubble-wrap")).not_to_have_count(0)
        # A photo and the customer's photo, loaded from the gateway (the CSP allows them).
        photos = thread.locator(".wa-photo img")
        expect(photos).to_have_count(2)
        for n in range(2):
            photos.nth(n).scroll_into_view_if_needed()
            expect(photos.nth(n)).to_have_js_property("complete", True)
            assert photos.nth(n).evaluate("img => img.naturalWidth") > 0
        expect(thread.locator(".wa-caption").first).to_contain_text("The Oslo sofa, in green")
        # A voice note plays from the gateway too.
        voice = thread.locator(".wa-voice audio")
        expect(voice).to_have_count(1)
        assert voice.get_attribute("src", timeout=1000).startswith("/media/med_")  # type: ignore[union-attr]
        # The document's chip: name, size, type; the link downloads it.
        chip = thread.locator("a.wa-doc")
        expect(chip).to_contain_text("Invoice 4521.pdf")
        expect(chip).to_contain_text("40 kB · PDF")
        # The list opens from its button.
        menu = thread.locator("details.wa-list")
        expect(menu.locator(".wa-row-title")).to_have_count(2)
        expect(menu.locator(".wa-row-title").first).to_be_hidden()
        menu.locator("summary").click()
        expect(menu.locator(".wa-row-title")).to_have_text(["Ground", "Express"])
        expect(menu).to_have_attribute("open", "")
        page.wait_for_timeout(3500)  # a live update of the thread keeps it open
        expect(thread.locator("details.wa-list")).to_have_attribute("open", "")
        expect(thread.locator("a.wa-button", has_text="See order")).to_have_attribute(
            "href", "https://shop.example/orders/4521"
        )
        cards = thread.locator(".wa-location")
        expect(cards).to_have_count(2)
        expect(cards.first).to_contain_text("Shop & Co showroom")
        expect(cards.last).to_contain_text("Eiffel Tower")
        expect(thread.locator(".wa-contact")).to_have_count(2)
        expect(thread.get_by_text("Chose from the list")).to_be_visible()
        expect(thread.locator(".wa-order")).to_contain_text("Total 949.00 EUR")
        expect(thread.locator(".wa-unsupported")).to_contain_text("does not support")
        expect(thread.locator(".wa-system")).to_contain_text("changed their number")
        # Reactions sit on their bubbles: the customer's ❤️ on our photo, ours on theirs.
        expect(thread.locator("[data-kind=reaction]")).to_have_count(0)
        reactions = thread.locator(".wa-reaction")
        expect(reactions).to_have_count(3)
        photo_bubble = thread.locator(".bubble-wrap.mine", has=page.locator(".wa-photo"))
        expect(photo_bubble.locator(".wa-reaction")).to_have_text("❤️")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the conversation is {overflow}px wider than the screen"
        shot(page, "conversation-kinds" + suffix)
        assert elsewhere == [], elsewhere
        assert errors == [], errors
        context.close()


def test_a_photo_and_a_list_composed_in_the_browser(
    browser: Browser, gateway: Gateway, every_kind: dict[str, str], tmp_path: Any
) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors = watch_errors(page)
    sign_in(page, gateway)
    page.goto(f"{gateway.url}/conversations/{DIGITS}")
    compose = page.locator("#compose")
    compose.get_by_text("Photo, video or file").click()
    picture_file = tmp_path / "lamp.png"
    picture_file.write_bytes(picture(64, 64, (210, 160, 80)))
    compose.get_by_label("File to send").set_input_files(str(picture_file))
    compose.get_by_label("File caption").fill("The *lamp* you asked about")
    compose.get_by_role("button", name="Send file").click()
    expect(page.get_by_text("Queued.")).to_be_visible()
    mine = page.locator("#thread .bubble-wrap.mine").last
    expect(mine.locator(".wa-caption")).to_have_text("The lamp you asked about")
    mine.locator("img").scroll_into_view_if_needed()
    expect(mine.locator("img")).to_have_js_property("complete", True)
    assert mine.locator("img").evaluate("img => img.naturalWidth") == 64
    expect(mine.locator(".ticks.tick-read, .ticks.tick-delivered")).to_be_visible(timeout=15_000)

    compose = page.locator("#compose")
    compose.get_by_text("List menu").click()
    form = compose.locator("form", has=page.locator("input[name=kind][value=list]"))
    form.get_by_label("List message").fill("Which colour?")
    form.get_by_label("List button").fill("Colours")
    form.get_by_label("List rows").fill(
        "# Colours\ngreen | Green | In stock\nblue | Blue | 2 weeks"
    )
    form.get_by_role("button", name="Send list").click()
    expect(page.get_by_text("Queued.")).to_be_visible()
    listed = page.locator("#thread .bubble-wrap.mine").last
    expect(listed.locator(".wa-body")).to_have_text("Which colour?")
    listed.locator("summary", has_text="Colours").click()
    expect(listed.locator(".wa-row-title")).to_have_text(["Green", "Blue"])
    # A wrong list is refused beside its input, with what was typed kept.
    compose = page.locator("#compose")
    compose.get_by_text("List menu").click()
    form = compose.locator("form", has=page.locator("input[name=kind][value=list]"))
    form.get_by_label("List message").fill("Too many")
    form.get_by_label("List button").fill("Choose")
    form.get_by_label("List rows").fill("\n".join(f"Row {n}" for n in range(11)))
    form.get_by_role("button", name="Send list").click()
    expect(page.locator("#f-list-sections-error")).to_be_visible()
    expect(page.get_by_label("List rows")).to_have_value(re.compile("Row 10"))
    assert errors == [] or all("422" in e for e in errors), errors
    context.close()


def test_a_list_row_is_tapped_on_the_sandbox_phone(
    browser: Browser, gateway: Gateway, every_kind: dict[str, str]
) -> None:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    errors = watch_errors(page)
    elsewhere = gateway_only(page, gateway)
    sign_in(page, gateway)
    page.goto(f"{gateway.url}/sandbox-phone/{DIGITS}")
    thread = page.locator("#phone-thread")
    menu = thread.locator("details.wa-list", has_text="Choose speed")
    menu.locator("summary").click()
    menu.get_by_role("button", name=re.compile("^Ground")).click()
    expect(thread.locator(".bubble-wrap.mine").last).to_contain_text("Ground")
    expect(thread.locator(".bubble-wrap.mine").last).to_contain_text("Chose from the list")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the sandbox phone is {overflow}px wider than the screen"
    # The chat scrolls inside the phone: nothing in it makes the page itself longer.
    tall = page.evaluate("document.documentElement.scrollHeight")
    bottom = page.evaluate("document.querySelector('.phone-layout').getBoundingClientRect().bottom")
    assert tall <= bottom + window_scroll(page) + 200, (tall, bottom)
    thread.locator(".chat").evaluate("chat => { chat.scrollTop = chat.scrollHeight; }")
    shot(page, "sandbox-phone-kinds")
    shown = thread.locator(".wa-photo img").first
    shown.scroll_into_view_if_needed()
    expect(shown).to_have_js_property("complete", True)
    page.goto(f"{gateway.url}/conversations/{DIGITS}")
    last_theirs = page.locator("#thread .bubble-wrap.theirs").last
    expect(last_theirs).to_contain_text("Chose from the list")
    expect(last_theirs).to_contain_text("Ground")
    assert elsewhere == [], elsewhere
    assert errors == [], errors
    context.close()
