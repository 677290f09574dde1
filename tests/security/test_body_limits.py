"""Bodies are bounded on every route, chunked ones too (SPEC §10).

Before, only a declared `Content-Length` was checked: a 200 MB chunked POST to `/sign-in` was
read whole. Here each route is sent a chunked body that would go on for 200 MB; the server
answers 413 (SPEC §2's shape; the dashboard: its "Too large" page) having pulled little more
than the route's limit, and nothing is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.dashboard import add_user, client_for, sign_in
from tests.support.harness import Harness, running_gateway
from tests.support.tenants import sqlite_url
from wagate.api.body_limit import ROUTE_LIMITS, RouteLimit
from wagate.cloud.webhooks import sign
from wagate.store.tables import channels, messages

CHUNK = 64 * 1024
ENDLESS = 200 * 1024 * 1024
ADMIN = "admin@example.com"


@dataclass
class Endless:
    """A chunked body of `ENDLESS` bytes (`prefix`, then filler), made as it is read."""

    prefix: bytes = b""
    pulled: int = 0
    chunks: list[int] = field(default_factory=list)

    async def body(self) -> AsyncIterator[bytes]:
        first = self.prefix + b"a" * (CHUNK - len(self.prefix))
        self.pulled += len(first)
        yield first
        while self.pulled < ENDLESS:
            self.pulled += CHUNK
            yield b"a" * CHUNK


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_gateway(sqlite_url(tmp_path), tmp_path / "data") as gateway:
        yield gateway


def limit_of(path: str) -> int:
    return next((r.limit for r in ROUTE_LIMITS if r.matches(path)), 256 * 1024)


async def stored(gw: Harness) -> tuple[int, int]:
    async with gw.engine.connect() as conn:
        count = [
            int((await conn.execute(select(func.count()).select_from(t))).scalar_one())
            for t in (messages, channels)
        ]
    return count[0], count[1]


@pytest.mark.parametrize(
    ("method", "path", "prefix"),
    [
        ("POST", "/v1/messages", b'{"phone": "+14155552671", "message": "'),
        ("POST", "/v1/messages/template", b'{"phone": "+14155552671", "template": "'),
        ("POST", "/v1/messages/batch", b'{"messages": [{"phone": "+14155552671", "message": "'),
        ("PUT", "/v1/callback", b'{"url": "https://example.com/'),
    ],
)
async def test_a_chunked_body_to_the_api_is_refused_past_its_limit(
    gw: Harness, method: str, path: str, prefix: bytes
) -> None:
    before = await stored(gw)
    body = Endless(prefix)
    answer = await gw.client.request(
        method,
        path,
        content=body.body(),
        headers={**gw.auth, "Content-Type": "application/json"},
    )
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert error["code"] == "payload_too_large"
    assert body.pulled <= limit_of(path) + 2 * CHUNK
    assert await stored(gw) == before
    callback = await gw.client.get("/v1/callback", headers=gw.auth)
    assert callback.json()["callback_url"] is None


async def test_a_chunked_webhook_is_refused_past_8_mib(gw: Harness) -> None:
    channel = await gw.sandbox_channel()
    body = Endless(b'{"object": "whatsapp_business_account", "entry": [')
    answer = await gw.client.post(
        f"/webhooks/whatsapp/{channel.id}",
        content=body.body(),
        headers={"X-Hub-Signature-256": sign("not-the-secret", b"x")},
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert body.pulled <= 8 * 1024 * 1024 + 2 * CHUNK


async def test_a_chunked_sign_in_is_refused_past_16_kib(gw: Harness) -> None:
    body = Endless(b"email=admin%40localhost&password=")
    async with client_for(gw.app) as browser:
        answer = await browser.post(
            "/sign-in",
            content=body.body(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 413
    assert "text/html" in answer.headers["content-type"]
    assert "Too large" in answer.text
    assert body.pulled <= 16 * 1024 + 2 * CHUNK


async def test_a_chunked_dashboard_form_is_refused_past_256_kib(gw: Harness) -> None:
    await add_user(gw.engine, account="sandbox", email=ADMIN, is_admin=True)
    before = await stored(gw)
    async with client_for(gw.app) as browser:
        csrf = await sign_in(browser, ADMIN)
        body = Endless(f"csrf_token={csrf}&phone_number_id=1&waba_id=2&verify_token=".encode())
        answer = await browser.post(
            "/channels",
            content=body.body(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 413
    assert "Too large" in answer.text
    assert body.pulled <= 256 * 1024 + 2 * CHUNK
    assert await stored(gw) == before


async def test_a_declared_length_over_the_limit_is_refused_before_the_body(gw: Harness) -> None:
    """Refused by its Content-Length alone: the body that never comes is not waited for."""
    import asyncio

    async def first_then_nothing() -> AsyncIterator[bytes]:
        yield b'{"phone": '
        await asyncio.Event().wait()
        yield b""

    answer = await asyncio.wait_for(
        gw.client.post(
            "/v1/messages",
            content=first_then_nothing(),
            headers={**gw.auth, "Content-Type": "application/json", "Content-Length": "70000"},
        ),
        timeout=5,
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["message"] == (
        "The request body is 70,000 bytes; the limit here is 64 KiB."
    )


def test_the_limit_table_is_easy_to_extend() -> None:
    """A route that needs more (media uploads: 100 MB) is one more line, ahead of the rest."""
    media = RouteLimit("/v1/media", 100 * 1000 * 1000)
    table = (media, *ROUTE_LIMITS)
    assert next(r for r in table if r.matches("/v1/media")).limit == 100_000_000
    assert next(r for r in table if r.matches("/v1/messages")).limit == 64 * 1024
    assert next(r for r in table if r.matches("/v1/messages/batch")).limit == 8 * 1024 * 1024
    assert next(r for r in table if r.matches("/webhooks/whatsapp/ch_1")).limit == 8 * 1024 * 1024
