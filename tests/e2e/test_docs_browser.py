"""`/docs` in headless Chromium with every request to another host blocked: Swagger UI comes
from the package itself, under a CSP that allows only this server, and shows the send endpoint."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.test_dashboard_browser import browser, watch_errors
from tests.support.processes import ServerProcess, free_port, wagate_env

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Route, expect  # noqa: E402

pytestmark = pytest.mark.slow
__all__ = ["browser"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(wagate_env(tmp_path_factory.mktemp("docs") / "data"), free_port())
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_docs_render_the_send_endpoint_offline(browser: Browser, server: ServerProcess) -> None:
    answer = httpx.get(server.url + "/docs")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    assert "http" not in policy  # no other origin allowed
    assert not re.search(r"https?://", answer.text), "the page refers to another site"

    context = browser.new_context()
    elsewhere: list[str] = []

    def only_this_server(route: Route) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(server.url).netloc:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(server.url + "/docs")
    send = page.locator(".opblock-post", has=page.locator('[data-path="/v1/messages"]'))
    expect(send).to_be_visible()
    expect(send.locator(".opblock-summary-description")).to_contain_text("text or interactive")
    send.locator(".opblock-summary").click()
    expect(send).to_contain_text("Request body")
    expect(send).to_contain_text('"phone"')
    assert elsewhere == [] and errors == []
    context.close()
