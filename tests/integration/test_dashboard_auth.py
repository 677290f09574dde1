"""Dashboard sign-in over HTTP: cookies, CSRF, slowed and blocked guessing, sign-out, expiry,
and that no page shows anything to someone who is not signed in."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.dashboard import (
    PASSWORD,
    add_user,
    client_for,
    sign_in,
    sign_in_form,
    try_sign_in,
)
from tests.support.harness import Harness, running_gateway
from wagate.clock import ManualClock
from wagate.dashboard.rules import FAILED_SIGN_IN_SECONDS, FREE_FAILURES
from wagate.store.tables import api_tokens, dashboard_sessions, users

EMAIL = "ops@example.com"

PAGES = [
    "/messages",
    "/messages/log",
    "/messages/msg_x",
    "/conversations",
    "/conversations/14155552671",
    "/channels",
    "/channels/new",
    "/settings/api",
    "/settings/users",
    "/sandbox-phone",
    "/templates",
    "/callbacks",
    "/media/med_x",
]


@pytest.fixture
async def clocked(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Harness, ManualClock]]:
    clock = ManualClock()
    async with running_gateway(
        database_url, tmp_path / "data", clock=clock, run_dispatcher=False
    ) as harness:
        await add_user(harness.engine, account="sandbox", email=EMAIL, clock=clock)
        yield harness, clock


@pytest.mark.parametrize("path", PAGES)
async def test_pages_send_strangers_to_sign_in(gateway: Harness, path: str) -> None:
    answer = await gateway.client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=" + path.replace("/", "%2F")
    fragment = await gateway.client.get(path, headers={"HX-Request": "true"})
    assert fragment.headers["HX-Redirect"].startswith("/sign-in?next=")
    assert "wagate_session" not in fragment.text


async def test_sign_in_sets_a_locked_down_cookie_and_returns_to_the_page(
    gateway: Harness,
) -> None:
    await add_user(gateway.engine, account="sandbox", email=EMAIL)
    async with client_for(gateway.app) as browser:
        answer = await try_sign_in(browser, "  OPS@example.com ", next="/channels")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/channels"
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("wagate_session=")
        )
        flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "path", "max-age"} <= flags
        assert "samesite=lax" in cookie.lower()
        assert "secure" not in flags  # plain http here
        assert (await browser.get("/channels")).status_code == 200
    # Only a hash of the cookie's token is stored.
    token = cookie.split(";")[0].split("=", 1)[1]
    async with gateway.engine.connect() as conn:
        hashes = (await conn.execute(select(dashboard_sessions.c.token_hash))).scalars().all()
    assert len(hashes) == 1 and token not in hashes[0]


async def test_cookie_is_secure_over_https(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=EMAIL)
    async with client_for(gateway.app, "https://wagate.test") as browser:
        answer = await try_sign_in(browser, EMAIL)
    cookie = next(c for c in answer.headers.get_list("set-cookie") if "wagate_session=" in c)
    assert "; secure" in cookie.lower()


async def test_redirects_after_sign_in_stay_on_this_server(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=EMAIL)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        async with client_for(gateway.app) as browser:
            answer = await try_sign_in(browser, EMAIL, next=target)
        assert answer.headers["location"] == "/messages", target


async def test_sign_in_form_needs_its_csrf_cookie(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=EMAIL)
    async with client_for(gateway.app) as browser:
        token = await sign_in_form(browser)
        browser.cookies.clear()  # a form posted from another site has no cookie of ours
        forged = await browser.post(
            "/sign-in", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}
        )
        assert forged.status_code == 403
        assert "wagate_session" not in forged.headers.get("set-cookie", "")
        wrong = await try_sign_in(browser, EMAIL, csrf_token="not-the-token")
        assert wrong.status_code == 403
    async with gateway.engine.connect() as conn:
        sessions = await conn.execute(select(func.count()).select_from(dashboard_sessions))
    assert sessions.scalar_one() == 0


async def test_wrong_and_unknown_look_the_same_and_are_slowed(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=EMAIL)
    async with client_for(gateway.app) as browser:
        # One failure first, untimed: the first one also pays for what is loaded and compiled
        # once (the page's template, the first write), which on a busy machine took longer
        # than the difference allowed below.
        await try_sign_in(browser, "warm-up@example.com", "not the password")
        timings: dict[str, float] = {}
        answers = {}
        # The fastest of three each: hashing runs at a low CPU priority, so on a machine busy
        # with other work one hash can wait far longer than another; the work is the same.
        for _ in range(3):
            for label, email in (("wrong", EMAIL), ("unknown", "nobody@example.com")):
                started = time.monotonic()
                answers[label] = await try_sign_in(browser, email, "not the password")
                took = time.monotonic() - started
                timings[label] = min(timings.get(label, took), took)
    assert answers["wrong"].status_code == answers["unknown"].status_code == 401
    assert "do not match" in answers["wrong"].text and "do not match" in answers["unknown"].text
    for seconds in timings.values():
        assert seconds >= FAILED_SIGN_IN_SECONDS * 0.95
    assert abs(timings["wrong"] - timings["unknown"]) < 0.25


async def test_repeated_failures_block_the_email_for_a_while(
    clocked: tuple[Harness, ManualClock],
) -> None:
    harness, clock = clocked
    async with client_for(harness.app) as browser:
        for _ in range(FREE_FAILURES - 1):
            assert (await try_sign_in(browser, EMAIL, "guess")).status_code == 401
        blocked = await try_sign_in(browser, EMAIL, "guess")
        assert blocked.status_code == 429
        assert "Try again in 30 seconds" in blocked.text
        # Even the right password is refused while blocked.
        right = await try_sign_in(browser, EMAIL)
        assert right.status_code == 429 and int(right.headers["Retry-After"]) <= 30
        clock.advance(seconds=31)
        again = await try_sign_in(browser, EMAIL, "guess")
        assert again.status_code == 429 and "Try again in 60 seconds" in again.text
        clock.advance(seconds=61)
        assert (await try_sign_in(browser, EMAIL)).status_code == 303
    async with harness.engine.connect() as conn:
        row = (await conn.execute(select(users.c.failed_sign_ins, users.c.blocked_until))).one()
    assert row.failed_sign_ins == 0 and row.blocked_until is None


async def test_unknown_emails_are_blocked_too(clocked: tuple[Harness, ManualClock]) -> None:
    """Otherwise a block would tell which emails have an account."""
    harness, _ = clocked
    async with client_for(harness.app) as browser:
        codes = [
            (await try_sign_in(browser, "ghost@example.com", "guess")).status_code
            for _ in range(FREE_FAILURES)
        ]
    assert codes == [401] * (FREE_FAILURES - 1) + [429]


async def test_sign_out_ends_the_session(clocked: tuple[Harness, ManualClock]) -> None:
    harness, _ = clocked
    async with client_for(harness.app) as browser:
        csrf = await sign_in(browser, EMAIL)
        cookie = browser.cookies["wagate_session"]
        refused = await browser.post("/sign-out", data={})
        assert refused.status_code == 403  # no CSRF token: still signed in
        assert (await browser.get("/messages")).status_code == 200
        out = await browser.post("/sign-out", data={"csrf_token": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/sign-in?signed_out=1"
    async with client_for(harness.app) as replay:
        replay.cookies.set("wagate_session", cookie)
        assert (await replay.get("/messages")).status_code == 303
    async with harness.engine.connect() as conn:
        left = await conn.execute(select(func.count()).select_from(dashboard_sessions))
    assert left.scalar_one() == 0


async def test_sessions_expire_after_fourteen_days(clocked: tuple[Harness, ManualClock]) -> None:
    harness, clock = clocked
    async with client_for(harness.app) as browser:
        await sign_in(browser, EMAIL)
        clock.advance(days=13, hours=23)
        assert (await browser.get("/messages")).status_code == 200
        clock.advance(hours=2)
        assert (await browser.get("/messages")).status_code == 303


async def test_posts_without_the_session_csrf_token_change_nothing(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=EMAIL)
    async with client_for(gateway.app) as browser:
        csrf = await sign_in(browser, EMAIL)
        for headers, data in (
            ({}, {"name": "no token"}),
            ({}, {"name": "wrong token", "csrf_token": csrf[:-2] + "xx"}),
            ({"X-CSRF-Token": "nope"}, {"name": "wrong header"}),
        ):
            answer = await browser.post("/settings/api/tokens", data=data, headers=headers)
            assert answer.status_code == 403
            assert "This form has expired" in answer.text
            assert answer.headers["content-type"].startswith("text/html")
        # htmx sends the token in a header; that is accepted.
        ok = await browser.post(
            "/settings/api/tokens", data={"name": "header"}, headers={"X-CSRF-Token": csrf}
        )
        assert ok.status_code == 303
    async with gateway.engine.connect() as conn:
        names = (await conn.execute(select(api_tokens.c.name))).scalars().all()
    assert sorted(names) == ["header", "sandbox"]


async def test_another_session_token_is_not_this_sessions(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=EMAIL)
    await add_user(gateway.engine, account="sandbox", email="second@example.com")
    async with client_for(gateway.app) as first, client_for(gateway.app) as second:
        await sign_in(first, EMAIL)
        other_csrf = await sign_in(second, "second@example.com")
        answer = await first.post(
            "/settings/api/tokens", data={"name": "x", "csrf_token": other_csrf}
        )
    assert answer.status_code == 403
