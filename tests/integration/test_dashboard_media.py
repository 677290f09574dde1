"""`/media/{id}`: the dashboard's own copy of a file, for its thumbnails, players and document
chips. Only for a signed-in user of the file's account; a photo is shown inline, anything else
is a download that no browser would run on the gateway's origin."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import media_samples as samples
from tests.support.dashboard import add_user, client_for, sign_in
from tests.support.harness import Harness

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
