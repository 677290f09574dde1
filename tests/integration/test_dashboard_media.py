"""`/media/{id}`: the dashboard's own copy of a file, for its thumbnails, players and document
chips. Only for a signed-in user of the file's account; a photo is shown inline, anything else
is a download that no browser would run on the gateway's origin."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.support import media_samples as samples
from tests.support.dashboard import add_user, client_for, sign_in
from tests.support.harness import Harness
from tests.support.kind_fixtures import Page
from wagate.store.tables import media

ME = "me@example.com"


async def upload(gateway: Harness, content: bytes, name: str) -> dict[str, Any]:
    answer = await gateway.client.post(
        "/v1/media", files={"file": (name, content)}, headers=gateway.auth
    )
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def test_a_photo_is_shown_inline_to_its_account_only(gateway: Harness) -> None:
    photo = samples.png(4, 4)
    stored = await upload(gateway, photo, "shop.png")
    await add_user(gateway.engine, account="sandbox", email=ME)
    await add_user(gateway.engine, account="acme", email="acme@example.com")
    async with client_for(gateway.app) as browser:
        await sign_in(browser, ME)
        got = await browser.get(f"/media/{stored['id']}")
        assert got.status_code == 200
        assert got.content == photo
        assert got.headers["content-type"] == "image/png"
        assert got.headers["content-disposition"].startswith("inline")
        assert got.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in got.headers["content-security-policy"]
        download = await browser.get(f"/media/{stored['id']}?download=1")
        assert download.headers["content-disposition"].startswith("attachment")
        assert download.content == photo
        missing = await browser.get("/media/med_nothing")
        assert missing.status_code == 404 and "No such file" in missing.text
    async with client_for(gateway.app) as other:
        await sign_in(other, "acme@example.com")
        theirs = await other.get(f"/media/{stored['id']}")
        assert theirs.status_code == 404
        assert photo not in theirs.content
    async with client_for(gateway.app) as stranger:
        away = await stranger.get(f"/media/{stored['id']}")
        assert away.status_code == 303 and away.headers["location"].startswith("/sign-in")


async def test_a_document_is_always_a_download(gateway: Harness) -> None:
    document = samples.pdf()
    stored = await upload(gateway, document, "Invoice 4521.pdf")
    await add_user(gateway.engine, account="sandbox", email=ME)
    async with client_for(gateway.app) as browser:
        await sign_in(browser, ME)
        got: httpx.Response = await browser.get(f"/media/{stored['id']}")
        assert got.status_code == 200 and got.content == document
        # Never rendered by the browser on this origin, whatever the file holds.
        assert got.headers["content-type"] == "application/octet-stream"
        disposition = got.headers["content-disposition"]
        assert disposition.startswith("attachment")
        assert "Invoice%204521.pdf" in disposition


CUSTOMER = "+14155552671"


async def media_rows(gateway: Harness) -> int:
    async with gateway.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(media)) or 0)


async def test_a_photo_composed_in_a_conversation_is_sent_and_shown(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    await gateway.reply(CUSTOMER, text="hello")
    photo = samples.png(8, 8)
    async with client_for(gateway.app) as browser:
        csrf = await sign_in(browser, ME)
        page = await browser.get(f"/conversations/{CUSTOMER[1:]}")
        channel = re.search(r"send-media\?channel=(ch_\w+)", page.text)
        assert channel, "the compose box offers a file"
        action = f"/conversations/{CUSTOMER[1:]}/send-media?channel={channel.group(1)}"
        # Without the form's token nothing is kept, and nothing is sent.
        forged = await browser.post(
            action, data={"caption": "x"}, files={"file": ("shop.png", photo)}
        )
        assert forged.status_code == 403
        assert await media_rows(gateway) == 0
        # A file WhatsApp would refuse is refused beside the file input, and not kept.
        refused = await browser.post(
            action,
            data={"csrf_token": csrf, "idempotency_key": "k-exe"},
            files={"file": ("setup.exe", samples.exe())},
        )
        assert refused.status_code == 422
        assert 'id="f-media-file-error"' in refused.text
        assert await media_rows(gateway) == 0
        sent = await browser.post(
            action,
            data={"csrf_token": csrf, "idempotency_key": "k-photo", "caption": "Your *sofa*"},
            files={"file": ("sofa.png", photo)},
        )
        assert sent.status_code == 303, sent.text
        message_id = re.search(r"sent=(msg_\w+)", sent.headers["location"])
        assert message_id
        delivered = await gateway.wait_status(message_id.group(1), "delivered")
        assert delivered["type"] == "media"
        drawn = Page((await browser.get(f"/conversations/{CUSTOMER[1:]}")).text)
        [img] = drawn.all("img")
        assert img["src"].startswith("/media/med_") and img["alt"] == "Your *sofa*"
        assert "Your sofa" in drawn.text
        shown = await browser.get(img["src"])
        assert shown.status_code == 200 and shown.content == photo
        # The message's own page shows it too.
        own = Page((await browser.get(f"/messages/{message_id.group(1)}")).text)
        assert [i["src"] for i in own.all("img")] == [img["src"]]


async def test_a_customers_photo_and_document_are_shown_from_our_copy(gateway: Harness) -> None:
    await add_user(gateway.engine, account="sandbox", email=ME)
    photo = samples.png(6, 6)
    for kind, name, content, caption in [
        ("image", "broken.png", photo, "the broken part"),
        ("document", "Invoice 4521.pdf", samples.pdf(), None),
    ]:
        answer = await gateway.client.post(
            "/sandbox/customer/media",
            data={"phone": CUSTOMER, "kind": kind, **({"caption": caption} if caption else {})},
            files={"file": (name, content)},
            headers=gateway.sandbox_auth,
        )
        assert answer.status_code == 200, answer.text
    await gateway.dispatcher.downloads.drain()
    async with client_for(gateway.app) as browser:
        await sign_in(browser, ME)
        drawn = Page((await browser.get(f"/conversations/{CUSTOMER[1:]}")).text)
        [img] = drawn.all("img")
        assert (await browser.get(img["src"])).content == photo
        assert "the broken part" in drawn.text
        [chip] = drawn.all("a", class_="wa-doc")
        assert chip["href"].endswith("?download=1")
        assert "Invoice 4521.pdf" in drawn.text and "PDF" in drawn.text
        document = await browser.get(chip["href"])
        assert document.content == samples.pdf()
        assert document.headers["content-disposition"].startswith("attachment")


async def test_a_player_can_ask_for_part_of_a_file(gateway: Harness) -> None:
    """Video and audio players seek with byte ranges (`Range: bytes=…`)."""
    clip = samples.mp4(5000)
    stored = await upload(gateway, clip, "clip.mp4")
    await add_user(gateway.engine, account="sandbox", email=ME)
    async with client_for(gateway.app) as browser:
        await sign_in(browser, ME)
        url = f"/media/{stored['id']}"
        whole = await browser.get(url)
        assert whole.headers["accept-ranges"] == "bytes" and whole.content == clip
        for asked, first, last in [
            ("bytes=0-99", 0, 99),
            ("bytes=4000-", 4000, 4999),
            ("bytes=-10", 4990, 4999),
            ("bytes=4990-99999", 4990, 4999),
        ]:
            part = await browser.get(url, headers={"Range": asked})
            assert part.status_code == 206, asked
            assert part.content == clip[first : last + 1], asked
            assert part.headers["content-range"] == f"bytes {first}-{last}/5000"
        outside = await browser.get(url, headers={"Range": "bytes=5000-"})
        assert outside.status_code == 416
        assert outside.headers["content-range"] == "bytes */5000"
        several = await browser.get(url, headers={"Range": "bytes=0-1,5-6"})
        assert several.status_code == 200 and several.content == clip
