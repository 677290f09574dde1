"""A customer's file (SPEC §8): downloaded from Meta (the sandbox) as soon as its webhook is
stored, checked against its sha256, kept, and shown as a `med_…` id in the conversation and
the `message.inbound` callback; a download that keeps failing is marked with the reason."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select, update

from tests.support import media_samples as samples
from tests.support.harness import Harness
from wagate.store.db import write_tx
from wagate.store.tables import accounts, callback_deliveries, media

PHONE = "+14155550123"


async def customer_sends(
    gateway: Harness, kind: str, content: bytes, name: str = "f.bin", **fields: str
) -> dict[str, Any]:
    response = await gateway.client.post(
        "/sandbox/customer/media",
        data={"phone": PHONE, "kind": kind, **fields},
        files={"file": (name, content)},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["delivered"], answer
    return answer


async def inbound_media(gateway: Harness) -> dict[str, Any]:
    response = await gateway.client.get(f"/v1/conversations/{PHONE}", headers=gateway.auth)
    assert response.status_code == 200, response.text
    [message] = [m for m in response.json()["messages"] if m["direction"] == "inbound"]
    found: dict[str, Any] = message["media"]
    return found


async def test_a_customers_photo_is_downloaded_and_kept(gateway: Harness) -> None:
    photo = samples.png(pad_to=1_500_000)
    await customer_sends(gateway, "image", photo, caption="the broken part")
    shown = await inbound_media(gateway)
    assert shown["id"].startswith("med_") and shown["media_type"] == "image"
    got = await gateway.client.get(f"/v1/media/{shown['id']}", headers=gateway.auth)
    assert got.status_code == 200, got.text
    assert got.content == photo
    assert got.headers["content-type"] == "image/png"
    shown = await inbound_media(gateway)
    assert shown["status"] == "ready"
    assert shown["sha256"] == hashlib.sha256(photo).hexdigest()
    assert shown["size"] == len(photo)


async def test_a_voice_note_and_a_document_keep_what_meta_said(gateway: Harness) -> None:
    await customer_sends(gateway, "document", samples.pdf(), "Invoice 4521.pdf")
    shown = await inbound_media(gateway)
    assert shown["filename"] == "Invoice 4521.pdf" and shown["media_type"] == "document"
    got = await gateway.client.get(f"/v1/media/{shown['id']}", headers=gateway.auth)
    assert got.status_code == 200 and got.content == samples.pdf()


async def test_a_download_that_keeps_failing_is_marked_with_the_reason(gateway: Harness) -> None:
    sandbox = gateway.app.state.dispatcher  # the downloads run beside the sends
    await sandbox.downloads.stop()
    await customer_sends(gateway, "image", samples.jpeg())
    shown = await inbound_media(gateway)
    assert shown["status"] == "pending"
    # Meta forgot the file (the sandbox restarted, say): the lookup is refused for good.
    mounted = next(r for r in gateway.app.routes if getattr(r, "path", "") == "/sandbox")
    mounted.app.state.sandbox.media.files.clear()  # type: ignore[attr-defined]
    await sandbox.downloads.drain()
    shown = await inbound_media(gateway)
    assert shown["status"] == "failed"
    assert shown["error"]["code"] == "media_unavailable"
    got = await gateway.client.get(f"/v1/media/{shown['id']}", headers=gateway.auth)
    assert got.status_code == 404
    assert "could not be downloaded" in got.json()["error"]["message"]


async def test_a_file_whose_sha256_differs_is_not_kept(gateway: Harness) -> None:
    downloads = gateway.app.state.dispatcher.downloads
    await downloads.stop()
    await customer_sends(gateway, "image", samples.jpeg())
    shown = await inbound_media(gateway)
    async with write_tx(gateway.engine) as conn:
        await conn.execute(
            update(media).where(media.c.id == shown["id"]).values(sha256="0" * 64, attempts=9)
        )
    await downloads.drain()
    shown = await inbound_media(gateway)
    assert shown["status"] == "failed" and shown["error"]["code"] == "sha256_mismatch"
    assert shown["size"] is None


async def test_the_inbound_callback_carries_the_media_id(gateway: Harness) -> None:
    async with write_tx(gateway.engine) as conn:
        await conn.execute(
            update(accounts)
            .where(accounts.c.id == await gateway.account_id())
            .values(callback_url="https://receiver.example.com/hook", callback_secret="s" * 32)
        )
    await gateway.app.state.dispatcher.callbacks.stop()  # kept queued, to be read here
    await customer_sends(gateway, "image", samples.jpeg(), caption="look")
    shown = await inbound_media(gateway)
    async with gateway.engine.connect() as conn:
        payloads = (
            (
                await conn.execute(
                    select(callback_deliveries.c.payload).where(
                        callback_deliveries.c.type == "message.inbound"
                    )
                )
            )
            .scalars()
            .all()
        )
    [event] = payloads
    assert event["data"]["media"]["id"] == shown["id"]
    assert event["data"]["media"]["status"] == "pending"
    assert event["data"]["media"]["caption"] == "look"


async def test_a_failed_download_is_retried_later_and_then_kept(gateway: Harness) -> None:
    downloads = gateway.app.state.dispatcher.downloads
    await downloads.stop()
    photo = samples.jpeg(5000)
    sent = await customer_sends(gateway, "image", photo)
    mounted = next(r for r in gateway.app.routes if getattr(r, "path", "") == "/sandbox")
    kept = mounted.app.state.sandbox.media.files[sent["media_id"]]  # type: ignore[attr-defined]
    kept.path.rename(kept.path.with_suffix(".away"))  # the download answers 500 for now
    await downloads.run_once()
    shown = await inbound_media(gateway)
    assert shown["status"] == "pending"
    async with gateway.engine.connect() as conn:
        row = (await conn.execute(select(media).where(media.c.id == shown["id"]))).one()
    assert row.attempts == 1 and row.error_code == "media_download_failed"
    assert row.available_at > gateway.clock.now()  # backed off, not tried again at once
    assert await downloads.run_once() == 0

    kept.path.with_suffix(".away").rename(kept.path)
    async with write_tx(gateway.engine) as conn:
        await conn.execute(
            update(media).where(media.c.id == shown["id"]).values(available_at=gateway.clock.now())
        )
    await downloads.drain()
    got = await gateway.client.get(f"/v1/media/{shown['id']}", headers=gateway.auth)
    assert got.status_code == 200 and got.content == photo


async def test_a_customers_file_never_runs_in_the_browser(gateway: Harness) -> None:
    page = b"<html><script>alert(document.cookie)</script></html>"
    await customer_sends(gateway, "document", page, "offer.html")
    shown = await inbound_media(gateway)
    got = await gateway.client.get(f"/v1/media/{shown['id']}", headers=gateway.auth)
    assert got.status_code == 200 and got.content == page
    assert got.headers["content-type"].startswith("text/plain")  # what its bytes are, not html
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]


async def test_a_customers_file_of_another_type_is_a_download(gateway: Harness) -> None:
    await customer_sends(gateway, "document", samples.gif(), "funny.gif")
    shown = await inbound_media(gateway)
    got = await gateway.client.get(f"/v1/media/{shown['id']}", headers=gateway.auth)
    assert got.status_code == 200 and got.content == samples.gif()
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"].startswith("attachment;")
