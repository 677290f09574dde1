"""Dashboard pages over HTTP with real storage and the sandbox: each account sees only its own
data, tokens and channels made here work at once, the conversation and sandbox phone send and
reply, failures are explained, and no page runs more than a few queries."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import select

from tests.support.dashboard import add_user, client_for, counting_queries, sign_in
from tests.support.harness import Harness, running_gateway
from wagate import secret_box
from wagate.store.tables import channels

CUSTOMER = "+14155552671"
ME = "me@example.com"


@asynccontextmanager
async def signed_in(
    gateway: Harness, email: str = ME
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with client_for(gateway.app) as browser:
        yield browser, await sign_in(browser, email)


async def add_acme(gateway: Harness) -> dict[str, str]:
    """A second account with its own user, channel, token and message."""
    await add_user(gateway.engine, account="acme", email="acme@example.com", is_admin=True)
    async with client_for(gateway.app) as acme:
        csrf = await sign_in(acme, "acme@example.com")
        added = await acme.post(
            "/channels",
            data={
                "csrf_token": csrf,
                "phone_number_id": "555000111",
                "waba_id": "555000222",
                "access_token": "acme-access-token-1234",
                "app_secret": "acme-app-secret-5678",
                "verify_token": "acme-verify",
                "mps": "20",
            },
        )
        assert added.status_code == 303, added.text
        made = await acme.post(
            "/settings/api/tokens", data={"csrf_token": csrf, "name": "acme"}, follow_redirects=True
        )
        token = re.search(r'value="(wg_[^"]+)"', made.text)
        assert token
    async with gateway.engine.connect() as conn:
        channel_id = (
            await conn.execute(
                select(channels.c.id).where(channels.c.phone_number_id == "555000111")
            )
        ).scalar_one()
    return {"token": token.group(1), "channel": channel_id}


async def sandbox_message(gateway: Harness, text: str = "Your order ships today") -> str:
    await gateway.reply(CUSTOMER, text="hi")
    sent = await gateway.send(phone=CUSTOMER, message=text)
    assert sent.status_code == 202, sent.text
    return str(sent.json()["id"])


async def test_each_account_sees_only_its_own(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME, is_admin=True)
    acme = await add_acme(gateway)
    theirs = await sandbox_message(gateway, "sandbox account's secret plans")
    async with client_for(gateway.app) as browser:
        await sign_in(browser, "acme@example.com")
        assert (await browser.get(f"/messages/{theirs}")).status_code == 404
        assert (await browser.get(f"/messages/{theirs}/live")).status_code == 404
        log = await browser.get("/messages")
        assert "secret plans" not in log.text and theirs not in log.text
        conversation = await browser.get(f"/conversations/{CUSTOMER[1:]}")
        assert conversation.status_code == 200 and "secret plans" not in conversation.text
        sandbox_channel = gateway.app.state.dashboard.sandbox.config.phone_number_id
        other = await browser.get(f"/conversations/{CUSTOMER[1:]}?channel={sandbox_channel}")
        assert other.status_code == 404
        assert (await browser.get("/sandbox-phone")).status_code == 404
        nav = (await browser.get("/channels")).text
        assert "Sandbox phone" not in nav and "100000000000001" not in nav
    async with client_for(gateway.app) as browser:
        csrf = await sign_in(browser, ME)
        # Their token, channel and page are out of reach, and stay as they were.
        async with gateway.engine.connect() as conn:
            from wagate.store.tables import api_tokens

            acme_token_id = (
                await conn.execute(select(api_tokens.c.id).where(api_tokens.c.name == "acme"))
            ).scalar_one()
        revoke = await browser.post(
            f"/settings/api/tokens/{acme_token_id}/revoke", data={"csrf_token": csrf}
        )
        assert revoke.status_code == 404
        assert "acme" not in (await browser.get("/settings/api")).text
        assert (await browser.get(f"/channels/{acme['channel']}/edit")).status_code == 404
        edit = await browser.post(
            f"/channels/{acme['channel']}",
            data={"csrf_token": csrf, "phone_number_id": "1", "waba_id": "2",
                  "verify_token": "stolen", "mps": "1"},
        )  # fmt: skip
        assert edit.status_code == 404
        assert "acme-verify" not in (await browser.get("/channels")).text
    still = await gateway.client.get(
        "/v1/messages", headers={"Authorization": f"Bearer {acme['token']}"}
    )
    assert still.status_code == 200
    async with gateway.engine.connect() as conn:
        verify = (
            await conn.execute(
                select(channels.c.verify_token).where(channels.c.id == acme["channel"])
            )
        ).scalar_one()
    assert verify == "acme-verify"


async def test_tokens_made_here_work_at_once_and_stop_at_once(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    await gateway.reply(CUSTOMER, text="hi")
    async with signed_in(gateway) as (browser, csrf):
        posted = await browser.post(
            "/settings/api/tokens", data={"csrf_token": csrf, "name": "shop"}
        )
        # POST, redirect, GET: the token is shown once, and a reload makes no second one.
        assert posted.status_code == 303
        made = await browser.get(posted.headers["location"])
        assert "shown only this once" in made.text
        token = re.search(r'value="(wg_[^"]+)"', made.text)
        assert token
        reloaded = await browser.get(posted.headers["location"])
        assert reloaded.status_code == 200 and token.group(1) not in reloaded.text
        assert "shown once, when it was made" in reloaded.text
        listed = await browser.get("/settings/api")
        assert listed.text.count("/revoke") == 2, "one token made (and the sandbox's)"
        headers = {"Authorization": f"Bearer {token.group(1)}"}
        sent = await gateway.client.post(
            "/v1/messages", json={"phone": CUSTOMER, "message": "hi"}, headers=headers
        )
        assert sent.status_code == 202
        listing = await browser.get("/settings/api")
        assert token.group(1) not in listing.text  # shown once only
        assert token.group(1)[:10] in listing.text
        token_id = re.search(r"/settings/api/tokens/(tok_\w+)/revoke", listing.text)
        assert token_id
        gone = await browser.post(
            f"/settings/api/tokens/{token_id.group(1)}/revoke", data={"csrf_token": csrf}
        )
        assert gone.status_code == 303
        refused = await gateway.client.post(
            "/v1/messages", json={"phone": CUSTOMER, "message": "hi"}, headers=headers
        )
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_token"
        again = await browser.post(
            f"/settings/api/tokens/{token_id.group(1)}/revoke", data={"csrf_token": csrf}
        )
        assert again.status_code == 404
        blank = await browser.post("/settings/api/tokens", data={"csrf_token": csrf, "name": " "})
        assert blank.status_code == 422 and "Give the token a name" in blank.text


async def test_channel_secrets_are_write_only(gateway: Harness) -> None:
    await add_user(gateway.engine, account="acme", email=ME, is_admin=True)
    async with signed_in(gateway) as (browser, csrf):
        form = {
            "csrf_token": csrf,
            "phone_number_id": "106540352242922",
            "waba_id": "102290129340398",
            "access_token": "EAAG-secret-access-token",
            "app_secret": "app-secret-value-abcd",
            "verify_token": "my-verify",
            "mps": "250",
        }
        bad = await browser.post("/channels", data=form | {"waba_id": "abc", "mps": "5000"})
        assert bad.status_code == 422
        assert "digits only" in bad.text and "1 to 1000" in bad.text
        assert "EAAG-secret-access-token" not in bad.text  # not echoed back, even on errors
        assert (await browser.post("/channels", data=form)).status_code == 303
        duplicate = await browser.post("/channels", data=form)
        assert duplicate.status_code == 422 and "already a channel" in duplicate.text
        page = (await browser.get("/channels")).text
        assert "EAAG-secret-access-token" not in page and "app-secret-value-abcd" not in page
        assert "••••••••oken" in page and "••••••••abcd" in page
        assert "my-verify" in page
        assert "http://wagate.test/webhooks/whatsapp" in page
        channel_id = re.search(r"/channels/(ch_\w+)/edit", page)
        assert channel_id
        edit = await browser.get(f"/channels/{channel_id.group(1)}/edit")
        assert "EAAG-secret-access-token" not in edit.text
        kept = form | {"access_token": "", "app_secret": "", "mps": "40"}
        assert (
            await browser.post(f"/channels/{channel_id.group(1)}", data=kept)
        ).status_code == 303
    async with gateway.engine.connect() as conn:
        row = (
            await conn.execute(select(channels).where(channels.c.id == channel_id.group(1)))
        ).one()
    # Stored sealed (SPEC §10), and kept as they were when left blank.
    assert row.access_token.startswith(secret_box.PREFIX)
    opened = (secret_box.open_secret(row.access_token), secret_box.open_secret(row.app_secret))
    assert (*opened, row.mps) == (
        "EAAG-secret-access-token",
        "app-secret-value-abcd",
        40,
    )


async def test_the_sandbox_channel_is_not_editable(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME, is_admin=True)
    async with signed_in(gateway) as (browser, _):
        page = (await browser.get("/channels")).text
        assert "/edit" not in page
        sandbox_id = re.search(r'id="(ch_\w+)"', page)
        assert sandbox_id
        answer = await browser.get(f"/channels/{sandbox_id.group(1)}/edit")
        assert answer.status_code == 409


async def test_sandbox_phone_reply_opens_the_window_and_the_page_sends(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    page = f"/conversations/{CUSTOMER[1:]}"
    async with signed_in(gateway) as (browser, csrf):
        closed = await browser.get(page)
        assert "has never written to this number" in closed.text
        assert "Send a template" in closed.text
        refused = await browser.post(
            page + "/send", data={"csrf_token": csrf, "message": "too early"}
        )
        assert refused.status_code == 409 and "window is closed" in refused.text
        replied = await browser.post(
            f"/sandbox-phone/{CUSTOMER[1:]}/reply",
            data={"csrf_token": csrf, "text": "Hello *shop*"},
            headers={"HX-Request": "true"},
        )
        assert replied.status_code == 200
        assert "Hello <strong>shop</strong>" in replied.text
        opened = await browser.get(page)
        assert "Closes in" in opened.text and "Send a message" in opened.text
        invalid = await browser.post(
            page + "/send", data={"csrf_token": csrf, "message": "hi", "header": "Hey"}
        )
        assert invalid.status_code == 422 and "button" in invalid.text
        sent = await browser.post(
            page + "/send",
            data={"csrf_token": csrf, "message": "Pick one", "buttons": "Yes\nno-id | No"},
        )
        assert sent.status_code == 303
        message_id = re.search(r"sent=(msg_\w+)", sent.headers["location"])
        assert message_id
    message = await gateway.wait_status(message_id.group(1), "read")
    assert message["buttons"] == [{"id": "yes", "title": "Yes"}, {"id": "no-id", "title": "No"}]
    async with client_for(gateway.app) as browser:
        csrf = await sign_in(browser, ME)
        phone = await browser.get(f"/sandbox-phone/{CUSTOMER[1:]}")
        assert "Pick one" in phone.text
        tapped = await browser.post(
            f"/sandbox-phone/{CUSTOMER[1:]}/reply",
            data={"csrf_token": csrf, "button_id": "no-id", "button_title": "No"},
        )
        assert tapped.status_code == 303
        thread = await browser.get(f"/conversations/{CUSTOMER[1:]}/live?shown=open")
        assert "Tapped a button" in thread.text
        assert "hx-swap-oob" in thread.text


async def test_a_send_form_submitted_twice_sends_once(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    await gateway.reply(CUSTOMER, text="hello")
    page = f"/conversations/{CUSTOMER[1:]}"
    async with signed_in(gateway) as (browser, csrf):
        drawn = (await browser.get(page)).text
        key = re.search(r'name="idempotency_key" value="([^"]+)"', drawn)
        assert key, "the send form carries an idempotency key"
        form = {"csrf_token": csrf, "message": "Only once", "idempotency_key": key.group(1)}
        first = await browser.post(page + "/send", data=form)
        again = await browser.post(page + "/send", data=form)  # a double click
        assert first.status_code == again.status_code == 303
        assert first.headers["location"] == again.headers["location"]
        redrawn = (await browser.get(page)).text
        other = re.search(r'name="idempotency_key" value="([^"]+)"', redrawn)
        assert other and other.group(1) != key.group(1)  # the next message is a new one
    listed = await gateway.client.get("/v1/messages", headers=gateway.auth)
    assert [m["message"] for m in listed.json()["data"]].count("Only once") == 1


async def test_live_conversation_redraws_the_compose_box_when_the_window_opens(
    gateway: Harness,
) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    async with signed_in(gateway) as (browser, _):
        live = f"/conversations/{CUSTOMER[1:]}/live?shown=closed"
        quiet = await browser.get(live)
        assert 'id="compose"' not in quiet.text
        await gateway.reply(CUSTOMER, text="hello")
        changed = await browser.get(live)
        assert 'id="compose"' in changed.text and "Send a message" in changed.text


async def test_log_filters(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    first = await sandbox_message(gateway, "first one")
    await gateway.wait_status(first, "read")
    await gateway.reply("+447911123456", text="hi")
    await gateway.client.post(
        "/sandbox/faults",
        json={"code": 131026, "phone": "+447911123456"},
        headers=gateway.sandbox_auth,
    )
    second = await gateway.send(phone="+447911123456", message="second one")
    assert second.status_code == 202, second.text
    await gateway.wait_status(second.json()["id"], "failed")
    async with signed_in(gateway) as (browser, _):
        everything = (await browser.get("/messages")).text
        assert "first one" in everything and "second one" in everything
        by_phone = (await browser.get("/messages", params={"phone": "+44 7911 123456"})).text
        assert "second one" in by_phone and "first one" not in by_phone
        by_status = (await browser.get("/messages", params={"status": "read"})).text
        assert "first one" in by_status and second.json()["id"] not in by_status
        failed = (await browser.get("/messages", params={"status": "failed"})).text
        assert "second one" in failed and "first one" not in failed
        none = await browser.get("/messages", params={"from": "2001-01-01", "to": "2001-01-02"})
        assert "No messages match these filters" in none.text
        today = gateway.clock.now().date().isoformat()
        assert "first one" in (await browser.get("/messages", params={"from": today})).text
        bad = await browser.get(
            "/messages", params={"phone": "12", "status": "lost", "from": "yesterday"}
        )
        assert bad.status_code == 422
        assert "Pick a status" in bad.text and "is not a date" in bad.text
        assert "phone" in bad.text


async def test_failures_are_explained(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    await gateway.reply(CUSTOMER, text="hi")
    fault = await gateway.client.post(
        "/sandbox/faults", json={"code": 131026, "mode": "status"}, headers=gateway.sandbox_auth
    )
    assert fault.status_code == 201, fault.text
    sent = await gateway.send(phone=CUSTOMER, message="<script>alert(1)</script> *hi*")
    await gateway.wait_status(sent.json()["id"], "failed")
    async with signed_in(gateway) as (browser, _):
        page = (await browser.get(f"/messages/{sent.json()['id']}")).text
        log = (await browser.get("/messages")).text
    assert "Message undeliverable" in page
    assert "What to do:" in page and "131026" in page
    for html in (page, log):
        assert "<script>alert(1)" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_error_pages_are_pages_and_the_api_keeps_json(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    async with signed_in(gateway) as (browser, _):
        missing = await browser.get("/no/such/page")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("text/html")
        assert "Page not found" in missing.text and "Sign out" in missing.text
        wrong_method = await browser.delete("/messages")
        assert wrong_method.status_code == 405 and "<html" in wrong_method.text
    api = await gateway.client.get("/v1/nowhere")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    paths = (await gateway.client.get("/openapi.json")).json()["paths"]
    assert all(
        p.startswith(("/v1/", "/webhooks/", "/healthz", "/readyz", "/metrics")) for p in paths
    )


async def test_no_page_runs_more_than_a_few_queries(database_url: str, tmp_path: Path) -> None:
    # No dispatcher: its polling would be counted too.
    async with running_gateway(database_url, tmp_path / "data", run_dispatcher=False) as gateway:
        await add_user(gateway.engine, account="sandbox", email=ME)
        message_id = await sandbox_message(gateway)
        await _count_page_queries(gateway, message_id)


async def _count_page_queries(gateway: Harness, message_id: str) -> None:
    pages = [
        "/messages",
        "/messages/log",
        f"/messages?phone={CUSTOMER}&status=queued&from=2020-01-01",
        f"/messages/{message_id}",
        f"/messages/{message_id}/live",
        "/conversations",
        f"/conversations/{CUSTOMER[1:]}",
        f"/conversations/{CUSTOMER[1:]}/live?shown=open",
        "/conversations/447911123456",  # window closed: the approved templates are read too
        f"/sandbox-phone/{CUSTOMER[1:]}",
        f"/sandbox-phone/{CUSTOMER[1:]}/thread",
        "/channels",
        "/settings/api",
        "/settings/users",
        "/templates",
        "/callbacks",
    ]
    async with signed_in(gateway) as (browser, _):
        for page in pages:
            with counting_queries(gateway.engine) as queries:
                answer = await browser.get(page)
            assert answer.status_code == 200, page
            assert len(queries) <= 6, (page, queries)


async def test_a_nul_character_in_an_address_is_a_bad_address_page(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    async with signed_in(gateway) as (browser, _):
        for path in ("/messages/msg_%00", "/channels/ch_%00/edit", "/messages?phone=%00"):
            page = await browser.get(path)
            assert page.status_code == 422, path
            assert page.headers["content-type"].startswith("text/html")
            assert "Something is wrong with this address" in page.text
