"""The embedded sandbox (SPEC §7, §10): its own routes need its access token, take bounded
bodies and numbers, and go as soon as the server has a real channel.

Before: `/sandbox/faults`, `/sandbox/customer/reply`, `/sandbox/customer/{phone}/messages` and
`/sandbox/stats` answered anyone; a 6 MB reply was stored whole; a huge `limit`, fault id or
timestamp gave a 500, a timestamp in 2100 opened a window; the sandbox stayed mounted after a
real channel was added, until a restart.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.support.dashboard import add_user, client_for, sign_in
from tests.support.harness import Harness, running_gateway
from tests.support.tenants import add_channel, sqlite_url
from wagate.store.tables import conversations, inbound_messages

CUSTOMER = "+14155552671"
ADMIN = "admin@example.com"

OWN_ROUTES = [
    ("GET", "/sandbox/stats", None),
    ("GET", "/sandbox/faults", None),
    ("POST", "/sandbox/faults", {"code": 131026}),
    ("DELETE", "/sandbox/faults", None),
    ("DELETE", "/sandbox/faults/1", None),
    ("POST", "/sandbox/customer/reply", {"phone": CUSTOMER, "text": "hi", "timestamp": 4102444800}),
    ("GET", f"/sandbox/customer/{CUSTOMER[1:]}/messages", None),
]


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_gateway(sqlite_url(tmp_path), tmp_path / "data") as gateway:
        yield gateway


async def count(gw: Harness, table: Any) -> int:
    async with gw.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.mark.parametrize(("method", "path", "body"), OWN_ROUTES, ids=[r[1] for r in OWN_ROUTES])
async def test_the_sandbox_routes_need_its_access_token(
    gw: Harness, method: str, path: str, body: Any
) -> None:
    missing = await gw.client.request(method, path, json=body)
    # The gateway's API token is a token, but not the sandbox's.
    wrong = await gw.client.request(method, path, json=body, headers=gw.auth)
    for answer, code in ((missing, "missing_token"), (wrong, "invalid_token")):
        assert answer.status_code == 401, answer.text
        assert answer.json()["success"] is False
        assert answer.json()["error"]["code"] == code
    # Nothing was done: no fault, no customer message, no window.
    faults = await gw.client.get("/sandbox/faults", headers=gw.sandbox_auth)
    assert faults.json() == []
    assert await count(gw, inbound_messages) == 0
    assert await count(gw, conversations) == 0


async def test_without_the_token_the_sandbox_says_only_that_it_is_up(gw: Harness) -> None:
    assert (await gw.client.get("/sandbox/")).json() == {"name": "wagate sandbox"}
    full = (await gw.client.get("/sandbox/", headers=gw.sandbox_auth)).json()
    assert full["phone_number_id"] == gw.identity.phone_number_id


async def test_a_6_mb_reply_is_refused_declared_or_streamed(gw: Harness) -> None:
    huge = b'{"phone": "+14155552671", "text": "' + b"a" * (6 * 1024 * 1024) + b'"}'
    streamed = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal streamed
        for start in range(0, len(huge), 64 * 1024):
            streamed += 64 * 1024
            yield huge[start : start + 64 * 1024]

    declared = await gw.client.post(
        "/sandbox/customer/reply", content=huge, headers=gw.sandbox_auth
    )
    chunked = await gw.client.post(
        "/sandbox/customer/reply", content=chunks(), headers=gw.sandbox_auth
    )
    for answer in (declared, chunked):
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"]["code"] == "payload_too_large"
    assert streamed <= 256 * 1024  # the rest of the chunked body was never read
    assert await count(gw, inbound_messages) == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", "/sandbox/customer/14155552671/messages?limit=99999999999999999999", None, "limit"),
        ("GET", "/sandbox/customer/14155552671/messages?limit=" + "9" * 5000, None, "limit"),
        ("GET", "/sandbox/customer/14155552671/messages?limit=0", None, "limit"),
        ("DELETE", "/sandbox/faults/" + "9" * 30, None, None),
        ("DELETE", "/sandbox/faults/" + "9" * 5000, None, None),
        ("POST", "/sandbox/customer/reply", {"text": "x", "timestamp": 10**30}, "timestamp"),
        ("POST", "/sandbox/customer/reply", {"text": "x", "timestamp": "9" * 5000}, "timestamp"),
        ("POST", "/sandbox/customer/reply", {"text": "x", "timestamp": 4102444800}, "timestamp"),
        ("POST", "/sandbox/customer/reply", {"text": "x", "timestamp": -1}, "timestamp"),
        ("POST", "/sandbox/faults", {"kind": "timeout", "seconds": 10**400}, "seconds"),
        ("POST", "/sandbox/faults", {"kind": "latency", "seconds": 1e300}, "seconds"),
        ("POST", "/sandbox/faults", {"code": 10**30}, "code"),
        ("POST", "/sandbox/faults", {"code": 131000, "count": 10**40}, "count"),
    ],
)
async def test_huge_numbers_are_a_4xx_never_a_500(
    gw: Harness, method: str, path: str, body: Any, field: str | None
) -> None:
    if body is not None and path.endswith("/reply"):
        body = {"phone": CUSTOMER, **body}
    answer = await gw.client.request(method, path, json=body, headers=gw.sandbox_auth)
    assert 400 <= answer.status_code < 500, answer.text
    error = answer.json()["error"]
    if field is not None:
        assert error["field"] == field, error
    # A reply from the future (2100) opened no window, nor did any other refused reply.
    assert await count(gw, conversations) == 0
    faults = await gw.client.get("/sandbox/faults", headers=gw.sandbox_auth)
    assert faults.json() == []


async def test_a_reply_within_a_few_minutes_of_the_clock_is_taken(gw: Harness) -> None:
    import time

    answer = await gw.client.post(
        "/sandbox/customer/reply",
        json={"phone": CUSTOMER, "text": "hi", "timestamp": int(time.time()) + 60},
        headers=gw.sandbox_auth,
    )
    assert answer.status_code == 200 and answer.json()["delivered"], answer.text


# --------------------------------------------------------------------------- a real channel


@pytest.fixture
async def auto(tmp_path: Path) -> AsyncIterator[Harness]:
    """`wagate serve` with WAGATE_SANDBOX=auto (the default): the sandbox while there is no
    real channel."""
    async with running_gateway(sqlite_url(tmp_path), tmp_path / "data", sandbox="auto") as gw:
        yield gw


async def assert_gone(gw: Harness) -> None:
    for method, path, body in [*OWN_ROUTES, ("GET", "/sandbox/", None)]:
        answer = await gw.client.request(method, path, json=body, headers=gw.sandbox_auth)
        assert answer.status_code == 404, (path, answer.text)
    graph = await gw.client.get(
        f"/sandbox/graph/v23.0/{gw.identity.phone_number_id}",
        headers={"Authorization": f"Bearer {gw.identity.access_token}"},
    )
    assert graph.status_code == 404
    sandbox_channel = gw.identity.phone_number_id
    send = await gw.send(phone=CUSTOMER, message="still there?", channel=sandbox_channel)
    assert send.status_code == 422, send.text
    assert send.json()["error"]["code"] == "channel_unavailable"
    assert send.json()["error"]["field"] == "channel"
    template = await gw.client.post(
        "/v1/messages/template",
        json={
            "phone": CUSTOMER,
            "template": "hello_world",
            "language": "en_US",
            "channel": sandbox_channel,
        },
        headers=gw.auth,
    )
    assert template.json()["error"]["code"] == "channel_unavailable", template.text


async def test_adding_a_real_channel_in_the_dashboard_turns_the_sandbox_off_at_once(
    auto: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    gw = auto
    await gw.reply(CUSTOMER, text="hello")
    assert (await gw.send(phone=CUSTOMER, message="one")).status_code == 202
    await add_user(gw.engine, account="sandbox", email=ADMIN, is_admin=True)
    async with client_for(gw.app) as browser:
        csrf = await sign_in(browser, ADMIN)
        form = (await browser.get("/channels/new")).text
        assert "The sandbox turns off when you add this channel." in form
        with caplog.at_level(logging.WARNING, logger="wagate.sandbox"):
            added = await browser.post(
                "/channels",
                data={
                    "csrf_token": csrf,
                    "phone_number_id": "106540352242922",
                    "waba_id": "102290129340398",
                    "access_token": "EAAG-token",
                    "app_secret": "app-secret",
                    "verify_token": "verify-me",
                    "graph_url": "https://graph.facebook.com",
                    "mps": "80",
                },
            )
        assert added.status_code == 303, added.text
        assert "the sandbox is off now" in caplog.text
        await assert_gone(gw)
        # Without a channel, the account's sends go to its real channel now (where this
        # customer has not written yet), not to the sandbox's default one.
        fallback = await gw.send(phone=CUSTOMER, message="via the real one")
        assert fallback.json()["error"]["code"] == "outside_service_window", fallback.text
        # So does the conversation's compose box: it offers the real number, not the gone one.
        page = (await browser.get(f"/conversations/{CUSTOMER[1:]}")).text
        assert "On number 106540352242922" in page
        assert "(sandbox)" not in page
        phone = await browser.get(f"/sandbox-phone/{CUSTOMER[1:]}")
        assert "The sandbox is not answering" in phone.text
        assert (
            "The sandbox is off: this server has a real channel"
            in (await browser.get("/channels")).text
        )
        # And the form no longer warns of what already happened.
        assert "The sandbox turns off" not in (await browser.get("/channels/new")).text


async def test_a_channel_added_from_another_process_turns_it_off_too(auto: Harness) -> None:
    """`wagate channels add` writes to the database from another process: the sandbox notices
    at its next request (and within a second in the background)."""
    gw = auto
    await gw.reply(CUSTOMER, text="hello")
    await add_channel(gw, account_id=await gw.account_id())  # as the CLI would
    stats = await gw.client.get("/sandbox/stats", headers=gw.sandbox_auth)
    assert stats.status_code == 404
    await assert_gone(gw)


async def test_with_wagate_sandbox_on_it_stays(gw: Harness) -> None:
    await add_channel(gw, account_id=await gw.account_id())
    assert (await gw.client.get("/sandbox/stats", headers=gw.sandbox_auth)).status_code == 200
    await gw.reply(CUSTOMER, text="hello")
    sent = await gw.send(phone=CUSTOMER, message="hi", channel=gw.identity.phone_number_id)
    assert sent.status_code == 202, sent.text


async def test_a_message_queued_before_the_sandbox_went_fails_at_once(tmp_path: Path) -> None:
    """Accepted while the sandbox ran, sent after it went: the send finds nothing there and
    the message fails at its next attempt, not retried for hours against a 503."""
    async with running_gateway(
        sqlite_url(tmp_path), tmp_path / "data", sandbox="auto", run_dispatcher=False
    ) as gw:
        await gw.reply(CUSTOMER, text="hello")
        queued = await gw.send(phone=CUSTOMER, message="sent too late")
        assert queued.status_code == 202
        await add_channel(gw, account_id=await gw.account_id())
        assert (await gw.client.get("/sandbox/", headers=gw.sandbox_auth)).status_code == 404
        await gw.dispatcher.drain(timeout=10)
        message = await gw.message(queued.json()["id"])
    assert message["status"] == "failed", message
    assert message["attempts"] == 1


@pytest.mark.slow
def test_wagate_serve_says_so_and_a_cli_channel_turns_it_off_without_a_restart(
    tmp_path: Path,
) -> None:
    """A real `wagate serve` (WAGATE_SANDBOX=auto) tells at start that a real channel turns
    the sandbox off; `wagate channels add` from another process does, at once; the log says so."""
    import re
    import time

    from tests.support.processes import ServerProcess, cli, cli_json, free_port, wagate_env
    from wagate.bootstrap import SandboxIdentity

    env = wagate_env(tmp_path / "data")
    server = ServerProcess(env, free_port())
    server.start()
    try:
        started = server.output()
        assert "adding a real channel turns the sandbox off at once" in started
        token = re.search(r"\bwg_[A-Za-z0-9_\-]{16,}", started)
        assert token is not None, started
        api = {"Authorization": f"Bearer {token.group(0)}"}
        identity = SandboxIdentity.load_or_create(tmp_path / "data")
        sandbox = {"Authorization": f"Bearer {identity.access_token}"}
        reply = httpx.post(
            f"{server.url}/sandbox/customer/reply",
            json={"phone": CUSTOMER, "text": "hi"},
            headers=sandbox,
            timeout=10,
        )
        assert reply.status_code == 200 and reply.json()["delivered"], reply.text
        cli_json(env, "accounts", "create", "--name", "acme")
        cli(
            env, "channels", "add", "--account", "acme", "--phone-number-id", "106540352242922",
            "--waba-id", "102290129340398", "--access-token", "EAAG-secret-token",
            "--app-secret", "app-secret-value", "--verify-token", "verify-me",
        )  # fmt: skip
        # No restart: the next request to the sandbox finds it gone.
        gone = httpx.get(f"{server.url}/sandbox/stats", headers=sandbox, timeout=10)
        assert gone.status_code == 404, gone.text
        send = httpx.post(
            f"{server.url}/v1/messages",
            json={"phone": CUSTOMER, "message": "hi"},
            headers=api,
            timeout=10,
        )
        assert send.status_code == 422, send.text
        assert send.json()["error"]["code"] == "channel_unavailable"
        deadline = time.monotonic() + 10
        while "the sandbox is off now" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
    finally:
        server.stop()
