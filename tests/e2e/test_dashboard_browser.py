"""The dashboard in headless Chromium (Debian's `chromium`, driven by the `playwright` package)
against a real `wagate serve`: a newcomer's path from the first start to a read message, tokens
made and revoked in the browser and used with the API, and every page at phone width.

With WAGATE_SCREENSHOTS=DIR set, the main pages are saved there as PNGs; docs/screenshots is
made by `WAGATE_SCREENSHOTS=docs/screenshots pytest tests/e2e/test_dashboard_browser.py`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import ServerProcess, free_port, wagate_env

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("WAGATE_CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("WAGATE_SCREENSHOTS")
CUSTOMER = "+14155552671"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; scripts/test installs Debian's chromium")
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking"],
        )
        yield browser
        browser.close()


class Gateway:
    def __init__(self, server: ServerProcess, email: str, password: str) -> None:
        self.server = server
        self.url = server.url
        self.email = email
        self.password = password


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`wagate serve` on its very first start: it prints the dashboard's admin and password."""
    # The callbacks of `scene` go to a receiver on loopback, which the egress policy allows only
    # when told to.
    env = wagate_env(
        tmp_path_factory.mktemp("dashboard") / "data", WAGATE_EGRESS_ALLOW="127.0.0.0/8"
    )
    server = ServerProcess(env, free_port())
    server.start()
    try:
        deadline = time.monotonic() + 20
        found = None
        while found is None and time.monotonic() < deadline:
            found = re.search(
                r"as (\S+@\S+)\s+with this password \(shown once\): (\S+)", server.output()
            )
            time.sleep(0.1)
        assert found, server.output()
        yield Gateway(server, found.group(1), found.group(2))
    finally:
        server.stop()


def watch_errors(page: Page) -> list[str]:
    """Script errors and console errors (a CSP violation is one) seen on the page."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def sign_in(page: Page, gateway: Gateway) -> None:
    page.goto(gateway.url + "/")
    expect(page).to_have_url(re.compile(r"/sign-in"))
    expect(page).to_have_title(re.compile("Sign in"))
    page.get_by_label("Email").fill(gateway.email)
    page.get_by_label("Password").fill(gateway.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/messages$"))


def nav(page: Page, name: str) -> Any:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def send(gateway: Gateway, token: str, **body: Any) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/messages",
        json={"phone": CUSTOMER, **body},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_from_first_start_to_a_read_message(browser: Browser, gateway: Gateway) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors = watch_errors(page)
    page.on("dialog", lambda dialog: dialog.accept())

    # Sign in with what the first `wagate serve` printed.
    sign_in(page, gateway)
    expect(page.get_by_role("heading", name="Messages")).to_be_visible()
    expect(page.get_by_text("No messages yet")).to_be_visible()

    # Settings → API: a token made here works on the API at once.
    nav(page, "Settings").click()
    page.get_by_label("Name").fill("browser test")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_text("shown only this once")).to_be_visible()
    token = page.get_by_label("The new API token").input_value()
    assert token.startswith("wg_")
    shot(page, "settings-api")
    closed = send(gateway, token, message="Before the window opens")
    assert closed.status_code == 409, closed.text  # the token is good; the window is closed
    assert closed.json()["error"]["code"] == "outside_service_window"

    # The sandbox phone plays the customer: its reply opens the window.
    nav(page, "Sandbox phone").click()
    expect(page).to_have_url(re.compile(r"/sandbox-phone"))
    page.get_by_label(f"Message from {CUSTOMER}").fill("Hi, is my order *4521* ready?")
    page.get_by_role("button", name="Send", exact=True).click()
    thread = page.locator("#phone-thread")
    expect(thread.locator("strong", has_text="4521")).to_be_visible()
    page.get_by_role("link", name=re.compile("Answer as the business")).click()
    expect(page.get_by_role("heading", name=re.compile("Window"))).to_contain_text("open")
    expect(page.locator(".countdown")).to_have_text(re.compile(r"^23:59:\d\d$"))

    # Watch the message log while the API sends: the row arrives and reaches `read` by itself.
    nav(page, "Messages").click()
    page.evaluate("window.__sameDocument = true")
    sent = send(
        gateway,
        token,
        message="Yes! *Order 4521* ships _today_.",
        header="Order 4521",
        footer="Reply to choose",
        buttons=[{"id": "track", "title": "Track it"}, {"id": "call", "title": "Call me"}],
    )
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["id"]
    row = page.locator("tr", has=page.locator(f"#m-{message_id}"))
    expect(row).to_be_visible()
    expect(row.locator(".status")).to_have_text("read", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    shot(page, "messages")

    # The message's page renders it as WhatsApp does and lists its history.
    page.locator(f"#m-{message_id}").click()
    bubble = page.locator(".bubble").first
    expect(bubble.locator(".wa-header")).to_have_text("Order 4521")
    expect(bubble.locator("strong")).to_have_text("Order 4521")
    expect(bubble.locator("em")).to_have_text("today")
    expect(page.locator(".wa-button")).to_have_text(["Track it", "Call me"])
    history = page.locator(".history li strong")
    expect(history).to_have_text(["queued", "accepted", "sent", "delivered", "read"])
    shot(page, "message")

    # Tap a button on the sandbox phone; the conversation shows the tap.
    page.goto(f"{gateway.url}/sandbox-phone/{CUSTOMER.lstrip('+')}")
    page.locator("#phone-thread").get_by_role("button", name="Call me").click()
    expect(page.locator("#phone-thread .bubble-wrap.mine").last).to_contain_text("Call me")
    shot(page, "sandbox-phone")

    # Answer from the conversation page; the phone receives it.
    page.goto(f"{gateway.url}/conversations/{CUSTOMER.lstrip('+')}")
    expect(page.locator("#thread")).to_contain_text("Tapped a button")
    page.get_by_label("Message", exact=True).fill("Calling you in *5 minutes*.")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_text("Queued.")).to_be_visible()
    answer = page.locator("#thread .bubble-wrap.mine").last
    expect(answer).to_contain_text("Calling you in 5 minutes.")
    expect(answer.locator(".ticks.tick-read")).to_be_visible(timeout=15_000)
    shot(page, "conversation")

    # Revoke the token: the API refuses it at once.
    nav(page, "Settings").click()
    page.get_by_role("button", name=re.compile("Revoke the token browser test")).click()
    expect(page.get_by_text("The token is revoked")).to_be_visible()
    refused = send(gateway, token, message="after revoking")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_token"

    nav(page, "Channels").click()
    expect(page.get_by_label("Callback URL")).to_have_value(
        re.compile(rf"^{re.escape(gateway.url)}/webhooks/whatsapp/ch_\w+$")
    )
    shot(page, "channels")

    # Templates: synced from the sandbox's Graph API with one button, shown filled in.
    nav(page, "Templates").click()
    expect(page.get_by_text("No templates synced yet")).to_be_visible()
    page.get_by_role("button", name="Sync from Meta").click()
    expect(page.get_by_text("Synced: 6 templates now.")).to_be_visible()
    card = page.locator(
        "section.card", has=page.get_by_role("heading", name=re.compile("^order_confirmation"))
    )
    expect(card.locator(".wa-body")).to_contain_text("Hi Asha, your order 4521 is confirmed")
    shot(page, "templates")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out")).to_be_visible()
    page.goto(gateway.url + "/messages")
    expect(page).to_have_url(re.compile(r"/sign-in\?next="))
    assert errors == []
    context.close()


FAILING = "+14155552672"
# A receiver's error page with a long unbroken line, as some frameworks send: it must wrap.
LONG_ERROR = "Traceback:" + "".join(f"frame{i:03d}/" for i in range(60))


@pytest.fixture(scope="module")
def scene(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Data on every page: a failed message, and callbacks failing with long errors (some
    waiting behind their lane's head)."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tests.support.processes import cli_json, serve_in_thread

    env = gateway.server.env
    token = cli_json(env, "tokens", "create", "--account", "sandbox", "--name", "scene")["token"]
    sandbox = {"Authorization": "Bearer " + _sandbox_token(env)}
    bearer = {"Authorization": f"Bearer {token}"}

    async def broken(_request: object) -> PlainTextResponse:
        return PlainTextResponse(LONG_ERROR, status_code=500)

    receiver = Starlette(routes=[Route("/{path:path}", broken, methods=["POST"])])
    with (
        serve_in_thread(receiver, free_port()) as url,
        httpx.Client(base_url=gateway.url, timeout=10) as http,
    ):
        long_path = "/wagate/events/" + "a-rather-long-path-segment-" * 4
        assert http.put("/v1/callback", json={"url": url + long_path}, headers=bearer).is_success
        http.post("/sandbox/customer/reply", json={"phone": FAILING, "text": "hi"}, headers=sandbox)
        fault = {"code": 131026, "mode": "response", "phone": FAILING}
        assert http.post("/sandbox/faults", json=fault, headers=sandbox).is_success
        sent = http.post("/v1/messages", json={"phone": FAILING, "message": "Hi"}, headers=bearer)
        assert sent.status_code == 202, sent.text
        failed = sent.json()["id"]
        # A message that goes all the way to read: its later status events wait behind the first.
        http.post(
            "/sandbox/customer/reply", json={"phone": CUSTOMER, "text": "hi"}, headers=sandbox
        )
        read = http.post("/v1/messages", json={"phone": CUSTOMER, "message": "On its way"},
                         headers=bearer)  # fmt: skip
        assert read.status_code == 202, read.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = http.get("/v1/callbacks", params={"status": "pending"}, headers=bearer).json()
            lanes = [d for d in listed["data"] if d["message_id"] == read.json()["id"]]
            if len(lanes) == 4 and any(d["last_error"] for d in listed["data"]):
                break
            time.sleep(0.2)
        yield {"failed": failed}


def _sandbox_token(env: dict[str, str]) -> str:
    import json

    identity = json.loads((Path(env["WAGATE_DATA_DIR"]) / "sandbox.json").read_text())
    return str(identity["access_token"])


PAGES = [
    ("/messages", "messages"),
    (f"/messages?phone={CUSTOMER}", "messages-filtered"),
    ("/messages/{failed}", "message-failed"),
    ("/conversations", "conversations"),
    (f"/conversations/{CUSTOMER.lstrip('+')}", "conversation"),
    ("/conversations/919876543210?template=order_confirmation%7Cen_US", "template-form"),
    (f"/sandbox-phone/{CUSTOMER.lstrip('+')}", "sandbox-phone"),
    ("/channels", "channels"),
    ("/channels/new", "channel-new"),
    ("/settings/api", "settings-api"),
    ("/settings/users", "settings-users"),
    ("/templates", "templates"),
    ("/callbacks", "callbacks"),
    ("/callbacks?status=pending", "callbacks-retrying"),
    ("/nowhere", "not-found"),
]

LABELS = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
    .map(el => el.outerHTML)"""


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_every_page_fits_the_screen_and_is_labelled(
    browser: Browser, gateway: Gateway, scene: dict[str, str], viewport: dict[str, int]
) -> None:
    """No page is wider than a 390 px phone (the callbacks with long ids and errors, a failed
    message with Meta's sentences included), every input has a label; with WAGATE_SCREENSHOTS,
    every page is saved at both widths (`NAME.png`, `NAME-phone.png`)."""
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    errors = watch_errors(page)
    sign_in(page, gateway)
    suffix = "-phone" if viewport is PHONE else ""
    for path, name in [*PAGES, ("/sign-in", "sign-in")]:
        if path == "/sign-in":
            page.get_by_role("button", name="Sign out").click()
            # The click posts a form; wait for the page it lands on, not the one it left.
            expect(page).to_have_url(re.compile(r"/sign-in\?signed_out=1"))
        else:
            page.goto(gateway.url + path.format(**scene))
        expect(page, path).to_have_title(re.compile(r"· wagate$"))
        expect(page.locator("h1")).to_have_count(1)
        if name == "callbacks-retrying":
            expect(page.get_by_text("waiting for the event before it").first).to_be_visible()
            expect(page.get_by_text("frame010/").first).to_be_visible()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is {overflow}px wider than the screen"
        assert page.evaluate(LABELS) == [], path
        shot(page, name + suffix)
    # The unknown page is a 404 page, with no script errors beyond its status.
    assert [e for e in errors if "404" not in e] == []
    context.close()
