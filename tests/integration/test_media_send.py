"""`POST /v1/messages/media` end to end with the sandbox (SPEC §8): a stored file or a link
goes to Meta by Meta's media id (uploaded once per content and number), every field rule is
checked before anything is queued, and a link that cannot be sent fails with our own code."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support import media_samples as samples
from tests.support import meta_schema
from tests.support.harness import Harness, running_gateway
from tests.support.processes import free_port

PHONE = "+14155550123"


def sandbox_of(gateway: Harness) -> Any:
    mounted = next(r for r in gateway.app.routes if getattr(r, "path", "") == "/sandbox")
    return mounted.app.state.sandbox  # type: ignore[attr-defined]


async def uploaded(gateway: Harness, content: bytes, name: str = "f.bin") -> str:
    response = await gateway.client.post(
        "/v1/media", files={"file": (name, content)}, headers=gateway.auth
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def send_media(gateway: Harness, **body: Any) -> Any:
    return await gateway.client.post(
        "/v1/messages/media", json={"phone": PHONE, **body}, headers=gateway.auth
    )


async def test_an_uploaded_photo_goes_to_meta_by_its_media_id_once(gateway: Harness) -> None:
    await gateway.reply(PHONE, text="hi")
    media_id = await uploaded(gateway, samples.png(pad_to=300_000), "shop.png")
    first = await send_media(gateway, media_type="image", media_id=media_id, caption="*New* in")
    assert first.status_code == 202, first.text
    assert first.json()["type"] == "media"
    await gateway.wait_status(first.json()["id"], "delivered")
    second = await send_media(gateway, media_type="image", media_id=media_id)
    await gateway.wait_status(second.json()["id"], "delivered")

    sandbox = sandbox_of(gateway)
    assert sandbox.media.uploads == 1  # the same bytes through the same number: one upload
    [kept] = sandbox.media.files.values()
    assert kept.size == len(samples.png(pad_to=300_000)) and kept.mime_type == "image/png"
    one, two = gateway.sent_to_meta
    assert one["type"] == "image"
    assert one["image"] == {"id": kept.id, "caption": "*New* in"}
    assert two["image"] == {"id": kept.id}
    if meta_schema.meta_spec_available():
        meta_schema.validate_message(one)
        meta_schema.validate_message(two)
    shown = await gateway.message(first.json()["id"])
    assert shown["content"]["media_id"] == media_id


async def test_a_document_keeps_its_filename_and_caption(gateway: Harness) -> None:
    await gateway.reply(PHONE, text="hi")
    media_id = await uploaded(gateway, samples.pdf(), "x.pdf")
    sent = await send_media(
        gateway, media_type="document", media_id=media_id, filename="Invoice 4521.pdf",
        caption="Your invoice",
    )  # fmt: skip
    assert sent.status_code == 202, sent.text
    await gateway.wait_status(sent.json()["id"], "delivered")
    [payload] = gateway.sent_to_meta
    assert payload["document"]["filename"] == "Invoice 4521.pdf"
    assert payload["document"]["caption"] == "Your invoice"
    if meta_schema.meta_spec_available():
        meta_schema.validate_message(payload)


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"media_id": "med_x"}, "missing_field", "media_type"),
        ({"media_type": "gif", "media_id": "med_x"}, "invalid_field", "media_type"),
        ({"media_type": "image"}, "missing_field", "media_id"),
        ({"media_type": "image", "media_id": "med_x", "media_url": "https://a.example/x.png"},
         "invalid_field", "media_url"),
        ({"media_type": "image", "media_url": "http://a.example/x.png"}, "invalid_url",
         "media_url"),
        ({"media_type": "image", "media_url": "https://10.0.0.7/x.png"}, "url_not_allowed",
         "media_url"),
        ({"media_type": "image", "media_url": "https://me:pw@a.example/x.png"},
         "url_not_allowed", "media_url"),
        ({"media_type": "audio", "media_url": "https://a.example/x.ogg", "caption": "hi"},
         "caption_not_allowed", "caption"),
        ({"media_type": "image", "media_url": "https://a.example/x.png", "filename": "a.png"},
         "filename_not_allowed", "filename"),
        ({"media_type": "image", "media_url": "https://a.example/x.png", "caption": "c" * 1025},
         "caption_too_long", "caption"),
        ({"media_type": "image", "media_id": "med_0123456789abcdef0123456789"},
         "media_not_found", "media_id"),
    ],
)  # fmt: skip
async def test_every_rule_is_checked_before_queueing(
    gateway: Harness, body: dict[str, Any], code: str, field: str
) -> None:
    await gateway.reply(PHONE, text="hi")
    response = await send_media(gateway, **body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    listed = await gateway.client.get("/v1/messages", headers=gateway.auth)
    assert listed.json()["data"] == []


async def test_a_stored_file_of_another_kind_is_a_mismatch(gateway: Harness) -> None:
    await gateway.reply(PHONE, text="hi")
    media_id = await uploaded(gateway, samples.pdf(), "x.pdf")
    response = await send_media(gateway, media_type="image", media_id=media_id)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "media_type_mismatch"


async def test_media_is_free_form_so_the_window_applies(gateway: Harness) -> None:
    media_id = await uploaded(gateway, samples.jpeg(), "a.jpg")
    response = await send_media(gateway, media_type="image", media_id=media_id)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "outside_service_window"


async def test_a_batch_item_of_kind_media(gateway: Harness) -> None:
    await gateway.reply(PHONE, text="hi")
    media_id = await uploaded(gateway, samples.jpeg(), "a.jpg")
    response = await gateway.client.post(
        "/v1/messages/batch",
        json={"messages": [
            {"kind": "media", "phone": PHONE, "media_type": "image", "media_id": media_id},
            {"kind": "media", "phone": PHONE, "media_type": "video", "media_id": media_id},
        ]},
        headers=gateway.auth,
    )  # fmt: skip
    assert response.status_code == 207, response.text
    ok, refused = response.json()["results"]
    assert ok["success"] is True
    assert refused["error"]["code"] == "media_type_mismatch"


# --------------------------------------------------------------------------- media_url


@pytest.fixture(scope="module")
def tls() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def file_server(tls: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A business's file server on https://127.0.0.1 (its CA trusted by wagate's client)."""
    import threading
    import time

    import uvicorn

    files = {
        "/shop.png": (samples.png(pad_to=200_000), "image/png"),
        "/anim.gif": (samples.gif(), "image/gif"),
        "/big.jpg": (samples.jpeg(5_000_100), "image/jpeg"),
    }

    async def serve(request: Request) -> Response:
        found = files.get(request.url.path)
        if found is None:
            return Response("gone", status_code=404)
        return Response(found[0], media_type=found[1])

    app = Starlette(routes=[Route("/{name}", serve)])
    cert = tls.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    tls.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning",
        ssl_certfile=str(cert_file), ssl_keyfile=str(key_file),
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ssl  # the module is what trusts the CA above (through SSL_CERT_FILE)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
async def networked(database_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_gateway(database_url, tmp_path / "data", graph_over_network=True) as h:
        yield h


async def test_a_media_url_is_fetched_checked_and_sent_by_media_id(
    networked: Harness, file_server: str
) -> None:
    gateway = networked
    await gateway.reply(PHONE, text="hi")
    good = await send_media(gateway, media_type="image", media_url=f"{file_server}/shop.png")
    assert good.status_code == 202, good.text
    await gateway.wait_status(good.json()["id"], "delivered", timeout=20)
    [kept] = sandbox_of(gateway).media.files.values()
    assert kept.size == len(samples.png(pad_to=200_000))

    for path, media_type, code in [
        ("/missing.png", "image", "media_unreachable"),
        ("/anim.gif", "image", "media_type_not_supported"),
        ("/big.jpg", "image", "media_too_large"),
        ("/shop.png", "video", "media_type_mismatch"),
    ]:
        sent = await send_media(gateway, media_type=media_type, media_url=file_server + path)
        assert sent.status_code == 202, sent.text
        failed = await gateway.wait_status(sent.json()["id"], "failed", timeout=20)
        assert failed["error"]["code"] == code, (path, failed["error"])


async def test_another_accounts_file_cannot_be_sent(gateway: Harness) -> None:
    from tests.support.tenants import add_tenant

    media_id = await uploaded(gateway, samples.jpeg(), "a.jpg")
    other = await add_tenant(gateway, "other-shop")
    response = await gateway.client.post(
        "/v1/messages/media",
        json={"phone": PHONE, "media_type": "image", "media_id": media_id},
        headers=other.auth,
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "media_not_found"
