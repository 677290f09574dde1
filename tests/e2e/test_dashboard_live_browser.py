"""What the dashboard shows as it happens, in headless Chromium against a real `wagate serve`
whose sandbox reports statuses at its default, human pace: each tick in turn (a clock drawn
without an emoji font, one grey tick, two grey, two blue), and a customer who just wrote
appearing in the sandbox phone's list without a reload."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.test_dashboard_browser import Gateway, browser, sign_in, watch_errors
from tests.support.processes import ServerProcess, free_port, wagate_env

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, expect  # noqa: E402

pytestmark = pytest.mark.slow
__all__ = ["browser"]

CUSTOMER = "+14155552671"
NEWCOMER = "+14155552688"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str, str]]:
    data = tmp_path_factory.mktemp("live") / "data"
    env = wagate_env(data)
    del env["WAGATE_SANDBOX_STATUS_DELAY"]  # the default pace, made for watching
    server = ServerProcess(env, free_port())
    server.start()
    try:
        deadline = time.monotonic() + 20
        found = None
        while found is None and time.monotonic() < deadline:
            found = re.search(
                r"token \(shown once\): (wg_\S+).*as (\S+@\S+)\s+with this password "
                r"\(shown once\): (\S+)",
                server.output(),
                re.S,
            )
            time.sleep(0.1)
        assert found, server.output()
        sandbox_token = json.loads((data / "sandbox.json").read_text())["access_token"]
        yield Gateway(server, found.group(2), found.group(3)), found.group(1), sandbox_token
    finally:
        server.stop()


def _reply(gateway: Gateway, sandbox_token: str, phone: str, text: str) -> None:
    answer = httpx.post(
        gateway.url + "/sandbox/customer/reply",
        json={"phone": phone, "text": text},
        headers={"Authorization": f"Bearer {sandbox_token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def test_each_tick_shows_in_turn(browser: Browser, live: tuple[Gateway, str, str]) -> None:
    gateway, token, sandbox_token = live
    _reply(gateway, sandbox_token, CUSTOMER, "hello")
    page = browser.new_context().new_page()
    errors = watch_errors(page)
    sign_in(page, gateway)
    page.goto(f"{gateway.url}/conversations/{CUSTOMER.lstrip('+')}")
    sent = httpx.post(
        gateway.url + "/v1/messages",
        json={"phone": CUSTOMER, "message": "Your parcel is on its way"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert sent.status_code == 202, sent.text
    ours = page.locator("#thread .bubble-wrap.mine", has_text="Your parcel is on its way")
    seen: list[str] = []
    clock_drawn = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not seen or seen[-1] != "read"):
        ticks = ours.locator(".ticks")
        if ticks.count():
            status = ticks.first.get_attribute("data-status") or ""
            if not seen or seen[-1] != status:
                seen.append(status)
            if status in ("queued", "accepted"):
                # A drawn clock, not the emoji 🕓 (a box where no emoji font is installed).
                clock_drawn = ticks.first.locator("svg").count() == 1
                assert ticks.first.inner_text().strip() == ""
        time.sleep(0.1)
    assert seen[-1] == "read", seen
    assert [s for s in seen if s in ("sent", "delivered", "read")] == ["sent", "delivered", "read"]
    if seen[0] in ("queued", "accepted"):
        assert clock_drawn
    blue = ours.locator(".ticks.tick-read svg path")
    expect(blue).to_have_count(2)  # two ticks
    color = ours.locator(".ticks.tick-read").evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(2, 126, 181)"  # WhatsApp's blue
    assert errors == []


def test_a_new_customer_appears_in_the_phone_list_without_a_reload(
    browser: Browser, live: tuple[Gateway, str, str]
) -> None:
    gateway, _, sandbox_token = live
    _reply(gateway, sandbox_token, CUSTOMER, "hi again")
    page = browser.new_context().new_page()
    sign_in(page, gateway)
    page.goto(f"{gateway.url}/sandbox-phone/{CUSTOMER.lstrip('+')}")
    people = page.get_by_role("list", name="Customers of the sandbox number")
    expect(people).to_contain_text(CUSTOMER)
    expect(people).not_to_contain_text(NEWCOMER)
    page.evaluate("window.__sameDocument = true")
    _reply(gateway, sandbox_token, NEWCOMER, "first time here")
    expect(people).to_contain_text(NEWCOMER, timeout=10_000)
    assert page.evaluate("window.__sameDocument") is True
