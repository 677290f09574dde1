"""`POST /v1/media` and `GET /v1/media/{id}` on SQLite and PostgreSQL: files stream into the media
store (the data folder, or the database), come back byte for byte, only to their own account,
and a file WhatsApp would refuse is refused at once and not kept."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support import media_samples as samples
from tests.support.harness import Harness
from tests.support.tenants import add_tenant
from wagate.config import Settings
from wagate.store.db import make_async_engine
from wagate.store.media_files import media_files_for
from wagate.store.tables import media, media_chunks


async def upload(
    gateway: Harness, content: bytes, name: str = "file.bin", **fields: str
) -> dict[str, object]:
    response = await gateway.client.post(
        "/v1/media", files={"file": (name, content)}, data=fields, headers=gateway.auth
    )
    body: dict[str, object] = response.json()
    body["_status"] = response.status_code
    return body


async def stored_rows(gateway: Harness) -> tuple[int, int]:
    async with gateway.engine.connect() as conn:
        rows = await conn.scalar(select(func.count()).select_from(media))
        chunks = await conn.scalar(select(func.count()).select_from(media_chunks))
    return int(rows or 0), int(chunks or 0)


def stored_files(gateway: Harness) -> list[str]:
    root = gateway.settings.data_dir / "media"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_an_uploaded_file_comes_back_byte_for_byte(gateway: Harness) -> None:
    content = samples.png(pad_to=2_500_000)  # several chunks of the store
    answer = await upload(gateway, content, "c:\\photos\\Shop front.png")
    assert answer["_status"] == 201, answer
    assert answer["media_type"] == "image" and answer["mime_type"] == "image/png"
    assert answer["size"] == len(content)
    assert answer["sha256"] == hashlib.sha256(content).hexdigest()
    assert answer["filename"] == "Shop front.png"
    assert str(answer["id"]).startswith("med_")

    got = await gateway.client.get(f"/v1/media/{answer['id']}", headers=gateway.auth)
    assert got.status_code == 200
    assert got.content == content
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-length"] == str(len(content))

    if gateway.engine.dialect.name == "sqlite":  # in the data folder, the owner's only
        [path] = (gateway.settings.data_dir / "media").rglob("med_*")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    else:  # in the database, so every machine sees it
        assert (await stored_rows(gateway))[1] == 3


async def test_a_file_is_its_accounts_own(gateway: Harness, tmp_path: object) -> None:
    answer = await upload(gateway, samples.pdf(), "invoice.pdf")
    other = await add_tenant(gateway, "other-shop")
    got = await gateway.client.get(f"/v1/media/{answer['id']}", headers=other.auth)
    assert got.status_code == 404
    assert got.json()["error"]["code"] == "media_not_found"
    missing = await gateway.client.get("/v1/media/med_nothing", headers=gateway.auth)
    assert missing.json()["error"]["code"] == "media_not_found"


@pytest.mark.parametrize(
    ("content", "fields", "code"),
    [
        pytest.param(samples.gif(), {}, "media_type_not_supported", id="gif"),
        pytest.param(samples.exe(), {}, "media_type_not_supported", id="exe named .jpg"),
        pytest.param(samples.png(pad_to=5_000_100), {}, "media_too_large", id="6 MB png"),
        pytest.param(samples.pdf(), {"media_type": "image"}, "media_type_mismatch", id="pdf img"),
        pytest.param(b"", {}, "missing_field", id="empty"),
    ],
)
async def test_a_file_whatsapp_would_refuse_is_refused_and_not_kept(
    gateway: Harness, content: bytes, fields: dict[str, str], code: str
) -> None:
    answer = await upload(gateway, content, "photo.jpg", **fields)
    assert answer["_status"] == 422, answer
    error = answer["error"]
    assert isinstance(error, dict) and error["code"] == code and error["field"] == "file"
    assert await stored_rows(gateway) == (0, 0)
    assert stored_files(gateway) == []


async def test_an_upload_over_100_mb_is_refused_before_it_is_read(gateway: Harness) -> None:
    async def body() -> AsyncIterator[bytes]:  # chunked: no Content-Length to go by
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n'
        yield samples.pdf()
        chunk = b"%" * (1 << 20)
        for _ in range(101):
            yield chunk
        yield b"\r\n--b--\r\n"

    response = await gateway.client.post(
        "/v1/media",
        content=body(),
        headers={**gateway.auth, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "media_too_large"
    assert await stored_rows(gateway) == (0, 0)
    assert stored_files(gateway) == []
    declared = await gateway.client.post(
        "/v1/media",
        content=b"x",
        headers={
            **gateway.auth,
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": "200000000",
        },
    )
    assert declared.status_code == 413


async def test_an_upload_needs_the_token_in_the_header(gateway: Harness) -> None:
    response = await gateway.client.post(
        "/v1/media", files={"file": ("a.png", samples.png())}, data={"token": gateway.token}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_token"
    assert await stored_rows(gateway) == (0, 0)


async def test_an_upload_that_is_not_multipart_is_a_clear_400(gateway: Harness) -> None:
    response = await gateway.client.post(
        "/v1/media", json={"file": "aGVsbG8="}, headers=gateway.auth
    )
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]["message"]


async def test_a_file_kept_in_postgresql_is_read_from_another_machine(
    gateway: Harness, tmp_path: Path
) -> None:
    """On PostgreSQL the bytes are in the database: another process with its own data folder
    (an API and a worker on two machines) reads the same file."""
    if gateway.engine.dialect.name != "postgresql":
        pytest.skip("the data folder is one machine's")
    content = samples.pdf(size=3_000_000)
    answer = await upload(gateway, content, "big.pdf")
    other_engine = make_async_engine(gateway.settings.resolved_database_url)
    try:
        elsewhere = media_files_for(Settings(data_dir=tmp_path / "other"), other_engine)
        got = b"".join([c async for c in elsewhere.open(await gateway.account_id(), answer["id"])])
    finally:
        await other_engine.dispose()
    assert got == content
    assert not (tmp_path / "other").exists()
