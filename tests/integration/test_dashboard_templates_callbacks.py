"""The dashboard's templates (sync, preview, sending one from a closed conversation, tapping
its quick reply on the sandbox phone) and callbacks (settings, dead letters, replay)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from sqlalchemy import func, select

from tests.support.callback_receiver import Receiver, receiving
from tests.support.dashboard import add_user, client_for, sign_in
from tests.support.harness import Harness, running_gateway
from tests.support.processes import free_port
from wagate.store.tables import messages

CUSTOMER = "+14155552671"
ME = "me@example.com"
PAGE = f"/conversations/{CUSTOMER[1:]}"


async def message_count(gateway: Harness) -> int:
    async with gateway.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(messages))).scalar_one())


async def test_sync_preview_and_send_a_template_then_tap_its_quick_reply(
    gateway: Harness,
) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    await add_user(gateway.engine, account="acme", email="acme@example.com")
    async with client_for(gateway.app) as browser:
        csrf = await sign_in(browser, ME)
        empty = await browser.get("/templates")
        assert "No templates synced yet" in empty.text
        assert (await browser.post("/templates/sync", data={})).status_code == 403
        synced = await browser.post("/templates/sync", data={"csrf_token": csrf})
        assert synced.status_code == 303 and synced.headers["location"] == "/templates?synced=6"
        listed = (await browser.get("/templates")).text
        for name in ("hello_world", "order_confirmation", "summer_sale", "winter_promo"):
            assert name in listed
        assert "Hi Asha, your order 4521 is confirmed" in listed  # filled with Meta's examples
        assert "rejected" in listed
        rejected = listed[listed.index("winter_promo") :].split("</section>", 1)[0]
        assert "Send it with the API" not in rejected and "Meta rejected it" in rejected
        sale = listed[listed.index("summer_sale") :].split("</section>", 1)[0]
        assert 'class="wa-media"' in sale  # the image header, as a frame with its link

        closed = await browser.get(PAGE)
        assert "Choose a template" in closed.text and "winter_promo" not in closed.text
        chosen = await browser.get(PAGE, params={"template": "order_confirmation|en_US"})
        fields = dict(re.findall(r'<input id="f-[^"]+" name="([^"]+)" type="text" value="([^"]*)"',
                                 chosen.text))  # fmt: skip
        # Empty, Meta's examples only as placeholders: "Asha" must not go out by accident.
        assert fields["body_first_name"] == "" and 'placeholder="e.g. Asha"' in chosen.text
        fields |= {"header_0": "#4521", "body_order_number": "4521", "button_0": "track-order"}
        fields["button_1"] = "4521"
        form = {"csrf_token": csrf, "template": "order_confirmation|en_US", **fields}

        before = await message_count(gateway)
        bad = await browser.post(PAGE + "/send-template", data=form | {"body_first_name": ""})
        assert bad.status_code == 422 and "params.body.first_name" in bad.text
        # The error is on the field, which is marked; the draft keeps what was typed.
        assert re.search(r'id="f-body_first_name" [^>]*aria-invalid="true"', bad.text)
        assert 'id="f-body_first_name-error"' in bad.text
        assert "Hi {{first_name}}, your order 4521 is confirmed" in bad.text
        assert await message_count(gateway) == before

        sent = await browser.post(PAGE + "/send-template", data=form | {"body_first_name": "Ravi"})
        assert sent.status_code == 303, sent.text
        message_id = re.search(r"sent=(msg_\w+)", sent.headers["location"])
        assert message_id
        message = await gateway.wait_status(message_id.group(1), "read")
        assert message["type"] == "template"
        assert message["message"].startswith("Hi Ravi, your order 4521")

        phone = await browser.get(f"/sandbox-phone/{CUSTOMER[1:]}")
        assert "Hi Ravi, your order 4521" in phone.text
        assert 'name="payload" value="track-order"' in phone.text  # the quick reply is tappable
        assert 'name="payload" value="https://' not in phone.text  # the link button is not
        tapped = await browser.post(
            f"/sandbox-phone/{CUSTOMER[1:]}/reply",
            data={"csrf_token": csrf, "payload": "track-order", "button_title": "Track order"},
        )
        assert tapped.status_code == 303
        opened = await browser.get(PAGE)
        assert "Closes in" in opened.text and "Tapped a quick reply" in opened.text
    async with client_for(gateway.app) as other:
        await sign_in(other, "acme@example.com")
        assert "order_confirmation" not in (await other.get("/templates")).text


async def test_callback_settings_dead_letters_and_replay(database_url: str, tmp_path: Path) -> None:
    quick = {"callback_retry_base": 0.2, "callback_retry_max": 0.4, "callback_give_up_after": 1.0}
    async with running_gateway(database_url, tmp_path / "data", **quick) as gateway:
        await add_user(gateway.engine, account="sandbox", email=ME, is_admin=True)
        receiver = Receiver(fail_with=500)
        with receiving(receiver, free_port()) as url:
            async with client_for(gateway.app) as browser:
                csrf = await sign_in(browser, ME)
                assert "No callback URL set" in (await browser.get("/callbacks")).text
                bad = await browser.post(
                    "/callbacks/settings", data={"csrf_token": csrf, "url": "ftp://x"}
                )
                assert bad.status_code == 422
                saved = await browser.post(
                    "/callbacks/settings", data={"csrf_token": csrf, "url": url, "action": "save"}
                )
                assert saved.status_code == 303
                page = (await browser.get("/callbacks")).text
                secret = re.search(r'id="callback-secret" [^>]*value="(whsec_[^"]+)"', page)
                assert secret and url in page
                receiver.secret = secret.group(1)

                await gateway.reply(CUSTOMER, text="where is my order?")
                dead = ""
                for _ in range(200):
                    dead = (await browser.get("/callbacks", params={"status": "failed"})).text
                    if "/replay" in dead:
                        break
                    await asyncio.sleep(0.05)
                assert "message.inbound" in dead and "HTTP 500" in dead
                assert "where is my order?" in dead  # the event body, to inspect
                delivery_id = re.search(r"/callbacks/(evt_\w+)/replay", dead)
                assert delivery_id

                receiver.fail_with = None
                replayed = await browser.post(
                    f"/callbacks/{delivery_id.group(1)}/replay", data={"csrf_token": csrf}
                )
                assert replayed.headers["location"] == "/callbacks?done=replayed"
                for _ in range(200):
                    if receiver.events():
                        break
                    await asyncio.sleep(0.05)
                assert receiver.events()[0]["data"]["text"] == "where is my order?"
                missing = await browser.post(
                    "/callbacks/evt_nope/replay", data={"csrf_token": csrf}
                )
                assert missing.status_code == 404

                rotated = await browser.post(
                    "/callbacks/settings", data={"csrf_token": csrf, "action": "rotate"}
                )
                assert rotated.status_code == 303
                after = (await browser.get("/callbacks")).text
                assert secret.group(1) not in after and url in after
