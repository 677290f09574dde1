"""What the dashboard says about things that went wrong: a failed message's page gives Meta's
words once, each on its own line; the callbacks log says which event each row is and which
events wait behind their lane's head instead of showing a past "next try"."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.dashboard import add_user, client_for, sign_in
from tests.support.harness import Harness, running_gateway
from tests.support.processes import free_port

CUSTOMER = "+14155552671"
ME = "me@example.com"
META_DETAILS = "Unable to deliver message."


async def test_a_failed_message_gives_metas_words_once(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    await gateway.reply(CUSTOMER, text="hi")
    fault = {"code": 131026, "mode": "response", "phone": CUSTOMER}
    assert (
        await gateway.client.post("/sandbox/faults", json=fault, headers=gateway.sandbox_auth)
    ).status_code == 201
    sent = await gateway.send(phone=CUSTOMER, message="Hello")
    message = await gateway.wait_status(sent.json()["id"], "failed")
    details = message["error"]["details"]
    assert details.startswith(META_DETAILS)
    async with client_for(gateway.app) as browser:
        await sign_in(browser, ME)
        page = (await browser.get(f"/messages/{message['id']}")).text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert text.count(META_DETAILS) == 1, "Meta's explanation is shown once"
    assert "Meta's error 131026" in text and "Meta says " + details.split(".")[0] in text
    assert "wagate code undeliverable" in text
    assert '"Message undeliverable".' not in page and ".(wagate code" not in text


async def test_callback_rows_say_which_event_and_which_wait(
    database_url: str, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/events"  # nothing listens: every attempt fails
    async with running_gateway(database_url, tmp_path / "data") as gateway:
        await add_user(gateway.engine, account="sandbox", email=ME)
        put = await gateway.client.put("/v1/callback", json={"url": nobody}, headers=gateway.auth)
        assert put.status_code == 200, put.text
        await gateway.reply(CUSTOMER, text="where is my parcel?")
        sent = await gateway.send(phone=CUSTOMER, message="On its way")
        message_id = sent.json()["id"]
        await gateway.wait_status(message_id, "read")
        async with client_for(gateway.app) as browser:
            await sign_in(browser, ME)
            for _ in range(100):
                page = (await browser.get("/callbacks", params={"status": "pending"})).text
                if page.count("waiting for the event before it") == 3:
                    break
            text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
        for status in ("accepted", "sent", "delivered", "read"):
            assert f"message.status · {status} → {message_id}" in text
        assert f"message.inbound · text from {CUSTOMER}" in text
        # The message's first event is tried (and fails); the three after it wait their turn.
        assert text.count("waiting for the event before it") == 3
        assert "Connection refused by 127.0.0.1" in text and "ssl:default" not in text
