"""The egress policy (SPEC §7) as a tenant or a hostile peer meets it: URLs wagate may not reach
are refused where they are configured (422 url_not_allowed, with the reason) and again at the
moment a socket would connect; answers are capped in size and in total time; redirects are not
followed; and what another server says is not reflected back to callers."""

from __future__ import annotations

import asyncio
import re
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.callback_receiver import Receiver, receiving
from tests.support.dashboard import add_user, client_for, sign_in
from tests.support.harness import Harness, running_gateway
from tests.support.hostile_peer import MiB, drip, fixed, huge, serving
from tests.support.processes import cli, cli_json, free_port, wagate_env
from tests.support.tenants import add_channel, open_window, sqlite_url
from wagate.bootstrap import SANDBOX_ACCOUNT
from wagate.dispatch.callbacks import CallbackSender
from wagate.egress import EgressPolicy, EgressRefused, egress_client, parse_ranges
from wagate.store import accounts as account_store
from wagate.store import callback_log
from wagate.store.callback_claims import DueDelivery
from wagate.store.db import write_tx

CUSTOMER = "+14155552671"
ADMIN = "admin@example.com"
RECEIVER_HIT_WITHIN = 10.0


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """The first truthy `check()` (awaited when it is a coroutine), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        assert time.monotonic() < deadline, f"nothing within {timeout} s"
        await asyncio.sleep(0.05)


async def only_delivery(gateway: Harness) -> dict[str, Any] | None:
    """The account's one callback delivery once it has been attempted, else None."""
    page = await gateway.client.get("/v1/callbacks", headers=gateway.auth)
    assert page.status_code == 200, page.text
    tried = [d for d in page.json()["data"] if d["last_error"] or d["status"] != "pending"]
    return tried[0] if tried else None


async def store_callback_url(gateway: Harness, url: str) -> None:
    """A callback URL as stored before this policy existed (or by a name that resolved to a
    public address then and to a private one now): the sender must still refuse it."""
    account_id = await sandbox_account(gateway)
    async with write_tx(gateway.engine) as conn:
        await callback_log.set_callback(conn, account_id=account_id, url=url)


async def sandbox_account(gateway: Harness) -> str:
    async with gateway.engine.connect() as conn:
        found = await account_store.find_account(conn, name=SANDBOX_ACCOUNT)
    assert found is not None
    return str(found["id"])


# --------------------------------------------------------------------------- where URLs are set


REFUSED = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://10.0.0.7/hook", "10.0.0.7 is a private address"),
    ("http://[::1]:8080/hook", "::1 is a loopback address"),
    ("http://localhost:8080/hook", "localhost resolves to 127.0.0.1, a loopback address"),
    ("http://2130706433/hook", "2130706433 is 127.0.0.1, a loopback address"),
    ("http://0x7f000001/hook", "0x7f000001 is 127.0.0.1, a loopback address"),
    ("http://[::ffff:169.254.169.254]/", "is 169.254.169.254, a link-local address"),
    ("http://100.64.0.1/hook", "100.64.0.1 is a shared (CGNAT) address"),
    ("ftp://example.com/hook", "ftp: URLs are not allowed"),
    ("https://user:secret@example.com/hook", "carries a user name or password"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
async def test_a_callback_url_wagate_may_not_reach_is_refused_with_the_reason(
    tmp_path: Path, url: str, reason: str
) -> None:
    async with running_gateway(sqlite_url(tmp_path), tmp_path / "data", egress_allow="") as gw:
        answer = await gw.client.put("/v1/callback", json={"url": url}, headers=gw.auth)
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == ("url_not_allowed", "url")
        assert reason in error["message"]
        if "is" in reason and "address" in reason:
            assert "WAGATE_EGRESS_ALLOW can allow a range" in error["message"]
        unchanged = (await gw.client.get("/v1/callback", headers=gw.auth)).json()
        assert unchanged["callback_url"] is None


async def test_an_operator_can_allow_a_private_range(tmp_path: Path) -> None:
    async with running_gateway(
        sqlite_url(tmp_path), tmp_path / "data", egress_allow="10.0.0.0/8,127.0.0.0/8"
    ) as gw:
        for url in ("http://10.0.0.7/hook", "http://localhost:8080/hook"):
            answer = await gw.client.put("/v1/callback", json={"url": url}, headers=gw.auth)
            assert answer.status_code == 200, answer.text
        refused = await gw.client.put(
            "/v1/callback", json={"url": "http://192.168.1.1/"}, headers=gw.auth
        )
        assert refused.json()["error"]["code"] == "url_not_allowed"


# --------------------------------------------------------------------------- when connecting


async def test_a_callback_receiver_on_a_refused_address_is_not_connected_to(
    tmp_path: Path,
) -> None:
    """Checked on the address the socket connects to: a URL stored before (or a name that
    resolves elsewhere now) gets nothing, and the delivery log says why."""
    receiver = Receiver()
    with receiving(receiver, free_port()) as url:
        async with running_gateway(sqlite_url(tmp_path), tmp_path / "data", egress_allow="") as gw:
            await store_callback_url(gw, url.replace("127.0.0.1", "localhost"))
            await gw.reply(CUSTOMER, text="hello")
            delivery = await eventually(lambda: only_delivery(gw), RECEIVER_HIT_WITHIN)
    assert receiver.attempts == 0
    assert delivery["status"] == "pending"  # retried later, as any failed delivery
    assert (
        "Refused by the egress policy: 127.0.0.1 is a loopback address" in (delivery["last_error"])
    )


async def test_the_same_receiver_gets_its_events_where_the_operator_allows_loopback(
    gateway: Harness,
) -> None:
    receiver = Receiver()
    with receiving(receiver, free_port()) as url:
        await store_callback_url(gateway, url)
        receiver.secret = (await gateway.client.get("/v1/callback", headers=gateway.auth)).json()[
            "callback_secret"
        ]
        await gateway.reply(CUSTOMER, text="hello")
        await eventually(lambda: receiver.events("message.inbound"), RECEIVER_HIT_WITHIN)


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize("declared", [False, True], ids=["streamed", "declared"])
async def test_a_150_mb_graph_answer_fails_the_send_without_being_read(
    tmp_path: Path, declared: bool
) -> None:
    async with (
        serving(huge(150 * MiB, declared=declared)) as (graph_url, peer),
        running_gateway(
            sqlite_url(tmp_path), tmp_path / "data", graph_over_network=True, max_attempts=1
        ) as gw,
    ):
        channel = await add_channel(gw, account_id=await sandbox_account(gw), graph_url=graph_url)
        await open_window(gw, channel, CUSTOMER)
        tracemalloc.start()
        try:
            sent = await gw.send(phone=CUSTOMER, message="hi", channel=channel.id)
            assert sent.status_code == 202, sent.text
            failed = await gw.wait_status(sent.json()["id"], "failed", timeout=30)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert failed["error"]["title"] == "answer too large"
    assert "larger than 1 MiB" in failed["error"]["details"]
    assert peak < 32 * MiB, f"{peak / MiB:.0f} MiB allocated while the answer came"
    assert peer.bytes_sent < 32 * MiB  # the rest was never asked for
    assert peer.connections == 1


async def test_a_150_mb_callback_answer_is_not_read(tmp_path: Path) -> None:
    """A receiver's 2xx is a delivery whatever its body; the body is not read."""
    async with (
        serving(huge(150 * MiB, status=200)) as (url, peer),
        running_gateway(sqlite_url(tmp_path), tmp_path / "data") as gw,
    ):
        await store_callback_url(gw, url + "/events")
        tracemalloc.start()
        try:
            await gw.reply(CUSTOMER, text="hello")
            delivery = await eventually(lambda: only_delivery(gw), RECEIVER_HIT_WITHIN)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert delivery["status"] == "delivered", delivery
    assert peak < 32 * MiB, f"{peak / MiB:.0f} MiB allocated while the answer came"
    assert peer.bytes_sent < 32 * MiB


async def test_a_dripping_callback_receiver_holds_an_attempt_only_until_its_deadline(
    tmp_path: Path,
) -> None:
    """One byte a second never trips a read timeout; the whole attempt still ends at
    WAGATE_CALLBACK_TIMEOUT, is recorded, and is not claimed and sent again meanwhile."""
    timeout = 3.0
    async with (
        serving(drip(1.0)) as (url, peer),
        running_gateway(sqlite_url(tmp_path), tmp_path / "data", callback_timeout=timeout) as gw,
    ):
        await store_callback_url(gw, url + "/events")
        await gw.reply(CUSTOMER, text="hello")
        started = time.monotonic()
        delivery = await eventually(lambda: only_delivery(gw), timeout + 10)
        took = time.monotonic() - started
        await asyncio.sleep(1.5)  # a second claim of the same event would connect again
        again = await only_delivery(gw)
    # The attempt's deadline is the timeout, or what is left of the event's lease when less
    # (the claim may come a moment before the attempt on a busy machine): never more.
    said = re.fullmatch(r"No complete answer within ([0-9.]+) s\.", delivery["last_error"])
    assert said is not None, delivery["last_error"]
    assert timeout - 1 < float(said.group(1)) <= timeout
    assert took < timeout + 5
    assert again is not None and again["attempts"] == 1 and again["status"] == "pending"
    assert peer.connections == 1


async def test_a_dripping_graph_api_holds_a_send_only_until_its_deadline(tmp_path: Path) -> None:
    timeout = 3.0
    async with (
        serving(drip(1.0)) as (graph_url, peer),
        running_gateway(
            sqlite_url(tmp_path),
            tmp_path / "data",
            graph_over_network=True,
            max_attempts=1,
            send_timeout=timeout,
        ) as gw,
    ):
        channel = await add_channel(gw, account_id=await sandbox_account(gw), graph_url=graph_url)
        await open_window(gw, channel, CUSTOMER)
        sent = await gw.send(phone=CUSTOMER, message="hi", channel=channel.id)
        started = time.monotonic()
        failed = await gw.wait_status(sent.json()["id"], "failed", timeout=timeout + 10)
    assert time.monotonic() - started < timeout + 5
    assert failed["error"]["title"] == "timeout"
    assert f"within {timeout:g} s" in failed["error"]["details"]
    assert peer.connections == 1


async def test_redirects_are_not_followed(tmp_path: Path) -> None:
    async with (
        serving(fixed(200, b'{"messages": [{"id": "wamid.X"}]}')) as (elsewhere, target),
        serving(fixed(302, b"", Location=elsewhere + "/events")) as (url, peer),
        running_gateway(sqlite_url(tmp_path), tmp_path / "data", graph_over_network=True) as gw,
    ):
        await store_callback_url(gw, url + "/events")
        channel = await add_channel(gw, account_id=await sandbox_account(gw), graph_url=url)
        await open_window(gw, channel, CUSTOMER)
        sent = await gw.send(phone=CUSTOMER, message="hi", channel=channel.id)
        failed = await gw.wait_status(sent.json()["id"], "failed")
        delivery = await eventually(lambda: only_delivery(gw), RECEIVER_HIT_WITHIN)
    assert failed["error"]["title"] == "HTTP 302"
    assert delivery["last_error"].startswith("HTTP 302 (redirects are not followed")
    assert target.connections == 0 and peer.connections >= 2


async def test_a_graph_url_answering_with_its_own_page_is_not_reflected(tmp_path: Path) -> None:
    """What an internal service says must not reach the caller through a 502 (the SSRF read
    primitive of a configurable Graph URL)."""
    page = b"<html><body>internal admin: root password hunter2</body></html>"
    async with (
        serving(fixed(500, page, content_type="text/html")) as (graph_url, _),
        running_gateway(sqlite_url(tmp_path), tmp_path / "data", graph_over_network=True) as gw,
    ):
        await add_channel(gw, account_id=await sandbox_account(gw), graph_url=graph_url)
        synced = await gw.client.post("/v1/templates/sync", headers=gw.auth)
    assert synced.status_code == 502
    error = synced.json()["error"]
    assert error["code"] == "upstream_error"
    assert "hunter2" not in synced.text and "internal admin" not in synced.text
    assert (
        "HTTP 500 (an HTTP 500 answer of 63 bytes of text/html, not Meta's error object)"
        in (error["message"])
    )


async def test_a_receivers_error_page_leaves_a_short_printable_excerpt(tmp_path: Path) -> None:
    body = b"\x1b[31mdatabase down\x1b[0m\x00\x07 " + b"trace line\n" * 2000
    async with (
        serving(fixed(500, body, content_type="text/plain")) as (url, _),
        running_gateway(sqlite_url(tmp_path), tmp_path / "data") as gw,
    ):
        await store_callback_url(gw, url + "/events")
        await gw.reply(CUSTOMER, text="hello")
        delivery = await eventually(lambda: only_delivery(gw), RECEIVER_HIT_WITHIN)
    error = delivery["last_error"]
    assert error.startswith("HTTP 500: [31mdatabase down [0m trace line trace line")
    assert len(error) <= 200
    assert all(c.isprintable() for c in error), repr(error)


async def test_an_event_whose_lease_ran_short_is_put_back_not_sent(gateway: Harness) -> None:
    """A sender too busy to start a POST while its claim lasts must not send it: it could
    outlive the lease and go out twice."""
    receiver = Receiver(secret="whsec_test")
    with receiving(receiver, free_port()) as url:
        sender = CallbackSender(
            engine=gateway.engine, settings=gateway.settings, clock=gateway.clock
        )
        claim = DueDelivery(
            seq=1,
            id="evt_test",
            account_id="acc_test",
            type="message.inbound",
            payload={"id": "evt_test"},
            attempts=1,
            created_at=gateway.clock.now(),
            url=url,
            secret="whsec_test",
        )
        try:
            short = time.monotonic() + sender.lease_margin + 1.0
            put_back = await sender.attempt(claim, leased_until=short)
            ample = time.monotonic() + sender.lease.total_seconds()
            sent = await sender.attempt(claim, leased_until=ample)
        finally:
            await sender.stop()
    assert not put_back.delivered and put_back.retry_at is not None
    assert put_back.error is not None and put_back.error.startswith("Not sent")
    assert sent.delivered
    assert receiver.attempts == 1


# --------------------------------------------------------------------------- dashboard and CLI


async def test_the_dashboards_forms_refuse_urls_wagate_may_not_reach(tmp_path: Path) -> None:
    async with running_gateway(sqlite_url(tmp_path), tmp_path / "data", egress_allow="") as gw:
        await add_user(gw.engine, account=SANDBOX_ACCOUNT, email=ADMIN, is_admin=True)
        async with client_for(gw.app) as browser:
            csrf = await sign_in(browser, ADMIN)
            callback = await browser.post(
                "/callbacks/settings",
                data={"csrf_token": csrf, "url": "http://169.254.169.254/", "action": "save"},
            )
            channel = {
                "csrf_token": csrf,
                "phone_number_id": "106540352242922",
                "waba_id": "102290129340398",
                "access_token": "EAAG-token",
                "app_secret": "app-secret",
                "verify_token": "verify-me",
                "graph_url": "http://2130706433/graph",
                "mps": "80",
            }
            added = await browser.post("/channels", data=channel)
            listed = (await browser.get("/channels")).text
            callbacks = (await browser.get("/callbacks")).text
    assert callback.status_code == 422
    assert "169.254.169.254 is a link-local address" in callback.text
    assert added.status_code == 422
    assert "2130706433 is 127.0.0.1, a loopback address" in added.text
    assert "106540352242922" not in listed  # nothing was saved
    assert "169.254.169.254" not in callbacks


@pytest.mark.slow
def test_the_cli_refuses_urls_wagate_may_not_reach(tmp_path: Path) -> None:
    env = wagate_env(tmp_path / "data", WAGATE_SANDBOX="off", WAGATE_EGRESS_ALLOW="")
    cli_json(env, "accounts", "create", "--name", "acme")
    refused = cli(
        env, "accounts", "set-callback", "--account", "acme", "--url", "http://[::1]/x", check=False
    )
    assert refused.returncode != 0
    assert "url_not_allowed" in refused.stderr and "::1 is a loopback address" in refused.stderr
    channel = (
        *("channels", "add", "--account", "acme", "--phone-number-id", "106540352242922"),
        *("--waba-id", "102290129340398", "--access-token", "t", "--app-secret", "s"),
        *("--verify-token", "v"),
    )
    graph = cli(env, *channel, "--graph-url", "http://10.1.2.3/graph", check=False)
    assert graph.returncode != 0 and "10.1.2.3 is a private address" in graph.stderr
    assert cli_json(env, "channels", "list") == []
    allowed = wagate_env(tmp_path / "data", WAGATE_SANDBOX="off", WAGATE_EGRESS_ALLOW="10.0.0.0/8")
    added = cli_json(allowed, *channel, "--graph-url", "http://10.1.2.3/graph")
    assert added["graph_url"] == "http://10.1.2.3/graph"


# --------------------------------------------------------------------------- behind a proxy


async def test_behind_a_proxy_the_proxy_is_checked_and_destinations_before_sending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The connection goes to the proxy, so the proxy's address is what must be allowed; the
    destination, which only the proxy connects to, is checked before anything is sent."""
    async with serving(fixed(200, b"via the proxy")) as (proxy, peer):
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, proxy)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        allowed = EgressPolicy(parse_ranges("127.0.0.1/32"))
        async with egress_client(allowed, max_answer_bytes=MiB, timeout=5) as http:
            answer = await http.get("http://callbacks.invalid/hook")
            assert answer.text == "via the proxy"
            assert peer.requests[0].startswith(b"GET http://callbacks.invalid/hook ")
            for refused, why in (
                ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
                ("http://[::1]/admin", "a loopback address"),
            ):
                with pytest.raises(EgressRefused, match=why):
                    await http.get(refused)
        async with egress_client(EgressPolicy(), max_answer_bytes=MiB, timeout=5) as http:
            with pytest.raises(EgressRefused, match=r"127\.0\.0\.1 is a loopback address"):
                await http.get("http://callbacks.invalid/hook")
    assert len(peer.requests) == 1
